//! The XML the Blob service answers with: List Blobs pages and error bodies. Peer input:
//! bounded depth, counts and sizes; anything unexpected is an error, never a panic.

use quick_xml::events::Event;
use quick_xml::Reader;

/// Blobs in one page at most (the service sends up to 5000).
const MAX_BLOBS: usize = 5000;
/// Metadata entries per blob at most.
const MAX_METADATA: usize = 64;
/// Element nesting at most.
const MAX_DEPTH: usize = 16;

/// One blob of a listing.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ListedBlob {
    pub name: String,
    pub etag: String,
    pub last_modified: String,
    /// Metadata names lower-cased.
    pub metadata: Vec<(String, String)>,
}

impl ListedBlob {
    pub(super) fn meta(&self, name: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One page of List Blobs.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ListPage {
    pub blobs: Vec<ListedBlob>,
    /// Where the next page starts; `None` on the last page.
    pub next_marker: Option<String>,
}

/// Walks `xml`, calling `on_text(path, text)` for each element's text content.
fn walk(
    xml: &str,
    mut on: impl FnMut(&[String], Option<&str>) -> Result<(), String>,
) -> Result<(), String> {
    let mut reader = Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    loop {
        match reader
            .read_event()
            .map_err(|e| format!("malformed XML: {e}"))?
        {
            Event::Start(e) => {
                if path.len() >= MAX_DEPTH {
                    return Err("XML nested too deeply".into());
                }
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                path.push(name);
                on(&path, None)?;
                text.clear();
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                path.push(name);
                on(&path, None)?;
                on(&path, Some(""))?;
                path.pop();
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| format!("XML text: {e}"))?;
                text.push_str(&s);
            }
            Event::CData(t) => {
                let s = t.decode().map_err(|e| format!("XML text: {e}"))?;
                text.push_str(&s);
            }
            Event::GeneralRef(r) => {
                if let Some(c) = r
                    .resolve_char_ref()
                    .map_err(|e| format!("XML reference: {e}"))?
                {
                    text.push(c);
                } else {
                    let name = r.decode().map_err(|e| format!("XML reference: {e}"))?;
                    let v = quick_xml::escape::resolve_xml_entity(&name)
                        .ok_or_else(|| format!("unknown XML entity &{name};"))?;
                    text.push_str(v);
                }
            }
            Event::End(_) => {
                on(&path, Some(&text))?;
                text.clear();
                path.pop();
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

/// Parses one List Blobs page.
pub(super) fn parse_list(xml: &str) -> Result<ListPage, String> {
    let mut page = ListPage::default();
    walk(xml, |path, text| {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        match (p.as_slice(), text) {
            (["EnumerationResults", "Blobs", "Blob"], None) => {
                if page.blobs.len() >= MAX_BLOBS {
                    return Err("too many blobs in one page".into());
                }
                page.blobs.push(ListedBlob::default());
            }
            (["EnumerationResults", "Blobs", "Blob", field], Some(t)) if *field == "Name" => {
                if let Some(b) = page.blobs.last_mut() {
                    b.name = t.to_owned();
                }
            }
            (["EnumerationResults", "Blobs", "Blob", "Properties", field], Some(t)) => {
                if let Some(b) = page.blobs.last_mut() {
                    match *field {
                        "Etag" => b.etag = t.to_owned(),
                        "Last-Modified" => b.last_modified = t.to_owned(),
                        _ => {}
                    }
                }
            }
            (["EnumerationResults", "Blobs", "Blob", "Metadata", key], Some(t)) => {
                if let Some(b) = page.blobs.last_mut() {
                    if b.metadata.len() >= MAX_METADATA {
                        return Err("too many metadata entries on one blob".into());
                    }
                    b.metadata.push((key.to_ascii_lowercase(), t.to_owned()));
                }
            }
            (["EnumerationResults", "NextMarker"], Some(t)) => {
                page.next_marker = Some(t.to_owned()).filter(|m| !m.is_empty());
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(page)
}

/// The `Code` and `Message` of an error body (empty when the body is not one); an
/// `AuthenticationErrorDetail` (why a token or signature was refused) is added to the message.
pub(super) fn parse_error(xml: &str) -> (String, String) {
    let (mut code, mut message, mut detail) = (String::new(), String::new(), String::new());
    let _ = walk(xml, |path, text| {
        match (
            path.iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice(),
            text,
        ) {
            (["Error", "Code"], Some(t)) => code = t.to_owned(),
            (["Error", "Message"], Some(t)) => message = t.lines().next().unwrap_or("").to_owned(),
            (["Error", "AuthenticationErrorDetail"], Some(t)) => {
                detail = t.lines().next().unwrap_or("").to_owned()
            }
            _ => {}
        }
        Ok(())
    });
    if !detail.is_empty() {
        message = format!("{message} ({detail})");
    }
    (code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_page_with_metadata_and_a_marker() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="http://127.0.0.1:10000/devstoreaccount1" ContainerName="c">
<Prefix>ns/eh/$default/ownership/</Prefix><MaxResults>2</MaxResults>
<Blobs>
<Blob><Name>ns/eh/$default/ownership/0</Name><Properties><Last-Modified>Tue, 01 Dec 2026 23:33:52 GMT</Last-Modified><Etag>"0x8D1"</Etag></Properties><Metadata><OwnerId>a&amp;b</OwnerId></Metadata></Blob>
<Blob><Name>ns/eh/$default/ownership/1</Name><Properties><Etag>0x8D2</Etag></Properties><Metadata/></Blob>
</Blobs><NextMarker>m2</NextMarker></EnumerationResults>"#;
        let page = parse_list(xml).unwrap();
        assert_eq!(page.blobs.len(), 2);
        assert_eq!(page.blobs[0].meta("ownerid"), Some("a&b"));
        assert_eq!(page.blobs[0].etag, "\"0x8D1\"");
        assert_eq!(page.blobs[1].name, "ns/eh/$default/ownership/1");
        assert_eq!(page.next_marker.as_deref(), Some("m2"));
        let last =
            parse_list("<EnumerationResults><Blobs/><NextMarker/></EnumerationResults>").unwrap();
        assert_eq!(last, ListPage::default());
    }

    #[test]
    fn hostile_xml_is_an_error_not_a_panic() {
        let deep = "<a>".repeat(100);
        assert!(parse_list(&deep).is_err());
        assert!(parse_list("<EnumerationResults><Blobs><Blob><Name>&bogus;</Name></Blob></Blobs></EnumerationResults>").is_err());
        assert!(parse_list("<EnumerationResults></Blobs>").is_err());
        let many = format!(
            "<EnumerationResults><Blobs>{}</Blobs></EnumerationResults>",
            "<Blob/>".repeat(MAX_BLOBS + 1)
        );
        assert!(parse_list(&many).is_err());
    }

    #[test]
    fn reads_error_bodies() {
        let (code, msg) = parse_error(
            "<?xml version=\"1.0\"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.\nRequestId:1</Message></Error>",
        );
        assert_eq!(code, "AuthenticationFailed");
        assert_eq!(msg, "Server failed to authenticate the request.");
        assert_eq!(parse_error("not xml"), (String::new(), String::new()));
        let (_, msg) = parse_error(
            "<Error><Code>AuthenticationFailed</Code><Message>Refused.</Message><AuthenticationErrorDetail>Invalid token audience.</AuthenticationErrorDetail></Error>",
        );
        assert_eq!(msg, "Refused. (Invalid token audience.)");
    }
}
