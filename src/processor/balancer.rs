//! Load balancing as a pure function: given the ownership records, the partitions, who we are
//! and the time, which records should we write? No I/O, no clock, randomness passed in — so it
//! is tested table-driven.

use super::manager::Ownership;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// How eagerly a processor takes partitions from other processors.
///
/// Under both strategies, partitions nobody holds (never owned, released, or expired) are
/// claimed up to the fair share in one cycle, so a processor alone owns every partition after
/// its first cycle. The strategies differ in stealing from an owner above its share.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    /// Steal one partition per cycle: a smooth hand-over, no duplicate storms (the default).
    #[default]
    Balanced,
    /// Steal as many as the fair share allows per cycle: faster rebalancing, more churn.
    Greedy,
}

/// What one balancing cycle decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BalancePlan {
    /// The records to write: our current ones (renewal) and the new claims.
    pub claims: Vec<Ownership>,
    /// We hold fewer than our fair share and there was something to take: the caller should
    /// run the next cycle at once rather than after a full interval.
    pub short_of_share: bool,
}

/// What one balancing cycle sees.
#[derive(Clone, Debug)]
pub struct BalanceInput<'a> {
    /// All ownership records of the consumer group.
    pub ownerships: &'a [Ownership],
    /// All partition ids of the hub.
    pub partition_ids: &'a [String],
    /// Our processor id.
    pub owner_id: &'a str,
    /// Now.
    pub now: SystemTime,
    /// A record not renewed for this long is free to claim.
    pub expiration: Duration,
    /// The strategy.
    pub strategy: Strategy,
}

/// The records to write this cycle: our current ones (renewal — the heartbeat) and the new
/// claims, ready for `claim_ownership`.
///
/// `pick(n)` chooses an index below `n` (randomness, injected for tests).
pub fn balance(input: &BalanceInput<'_>, pick: &mut dyn FnMut(usize) -> usize) -> Vec<Ownership> {
    plan(input, pick).claims
}

/// [`balance`] with whether the caller should run the next cycle at once.
pub fn plan(input: &BalanceInput<'_>, pick: &mut dyn FnMut(usize) -> usize) -> BalancePlan {
    let template = input.ownerships.first();
    let expired = |o: &Ownership| {
        o.owner_id.is_empty()
            || input
                .now
                .duration_since(o.last_modified_time)
                .is_ok_and(|age| age > input.expiration)
    };
    let known: BTreeMap<&str, &Ownership> = input
        .ownerships
        .iter()
        .map(|o| (o.partition_id.as_str(), o))
        .collect();
    // Partitions anyone may take: never owned, released, or expired.
    let mut claimable: Vec<Ownership> = Vec::new();
    for p in input.partition_ids {
        match known.get(p.as_str()) {
            None => claimable.push(Ownership {
                fully_qualified_namespace: template
                    .map(|t| t.fully_qualified_namespace.clone())
                    .unwrap_or_default(),
                event_hub_name: template
                    .map(|t| t.event_hub_name.clone())
                    .unwrap_or_default(),
                consumer_group: template
                    .map(|t| t.consumer_group.clone())
                    .unwrap_or_default(),
                partition_id: p.clone(),
                owner_id: String::new(),
                last_modified_time: input.now,
                etag: None,
            }),
            Some(o) if expired(o) => claimable.push((*o).clone()),
            Some(_) => {}
        }
    }
    // Active records by owner; we always count as an owner.
    let mut by_owner: BTreeMap<&str, Vec<&Ownership>> = BTreeMap::new();
    by_owner.entry(input.owner_id).or_default();
    for o in input.ownerships {
        if !expired(o) && input.partition_ids.contains(&o.partition_id) {
            by_owner.entry(o.owner_id.as_str()).or_default().push(o);
        }
    }
    let partitions = input.partition_ids.len();
    let owners = by_owner.len();
    let max = partitions.div_ceil(owners);
    let extra_possible = !partitions.is_multiple_of(owners);
    let mine: Vec<&Ownership> = by_owner.get(input.owner_id).cloned().unwrap_or_default();
    // Records of owners holding more than their share: candidates to steal.
    let mut above_max: Vec<&Ownership> = by_owner
        .iter()
        .filter(|(owner, held)| *owner != &input.owner_id && held.len() > max)
        .flat_map(|(_, held)| held.iter().copied())
        .collect();

    let should_claim = if mine.len() >= max {
        false
    } else if extra_possible && mine.len() + 1 == max {
        !claimable.is_empty() || !above_max.is_empty()
    } else {
        true
    };

    let mut out: Vec<Ownership> = mine.iter().map(|o| (*o).clone()).collect();
    let short_of_share = should_claim && (!claimable.is_empty() || !above_max.is_empty());
    if should_claim {
        // Free partitions cost nobody anything: take up to the share at once. Stealing stops
        // another processor's work, so the balanced strategy does it one at a time.
        let room = max - mine.len();
        let mut taken = 0;
        while taken < room && !claimable.is_empty() {
            let i = pick(claimable.len()) % claimable.len();
            out.push(claimable.swap_remove(i));
            taken += 1;
        }
        let steal = match input.strategy {
            Strategy::Balanced if taken == 0 => 1,
            Strategy::Balanced => 0,
            Strategy::Greedy => room - taken,
        };
        let mut stolen = 0;
        while stolen < steal && !above_max.is_empty() {
            let i = pick(above_max.len()) % above_max.len();
            out.push(above_max.swap_remove(i).clone());
            stolen += 1;
        }
    }
    for o in &mut out {
        o.owner_id = input.owner_id.to_owned();
    }
    BalancePlan {
        claims: out,
        short_of_share,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn rec(p: usize, owner: &str, age: u64) -> Ownership {
        Ownership {
            fully_qualified_namespace: "ns".into(),
            event_hub_name: "eh".into(),
            consumer_group: "$default".into(),
            partition_id: p.to_string(),
            owner_id: owner.into(),
            last_modified_time: at(T0 - age),
            etag: Some(format!("e{p}")),
        }
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| i.to_string()).collect()
    }

    fn run(records: &[Ownership], n: usize, me: &str, strategy: Strategy) -> Vec<Ownership> {
        let ids = ids(n);
        let input = BalanceInput {
            ownerships: records,
            partition_ids: &ids,
            owner_id: me,
            now: at(T0),
            expiration: Duration::from_secs(60),
            strategy,
        };
        balance(&input, &mut |n| n - 1)
    }

    fn partitions(out: &[Ownership]) -> Vec<String> {
        let mut v: Vec<String> = out.iter().map(|o| o.partition_id.clone()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_lone_processor_claims_every_free_partition_in_one_cycle() {
        for strategy in [Strategy::Balanced, Strategy::Greedy] {
            let out = run(&[], 4, "a", strategy);
            assert_eq!(partitions(&out), vec!["0", "1", "2", "3"], "{strategy:?}");
            for o in &out {
                assert_eq!(o.owner_id, "a");
                assert_eq!(
                    o.etag, None,
                    "a never-owned partition is a create-only claim"
                );
            }
        }
    }

    fn plan_for(records: &[Ownership], n: usize, me: &str, strategy: Strategy) -> BalancePlan {
        let ids = ids(n);
        let input = BalanceInput {
            ownerships: records,
            partition_ids: &ids,
            owner_id: me,
            now: at(T0),
            expiration: Duration::from_secs(60),
            strategy,
        };
        plan(&input, &mut |n| n - 1)
    }

    #[test]
    fn free_partitions_are_claimed_only_up_to_the_share() {
        // b holds 2 of 8, 6 free; a and b are the owners → share 4.
        let records: Vec<_> = (0..2).map(|p| rec(p, "b", 5)).collect();
        let out = plan_for(&records, 8, "a", Strategy::Balanced);
        assert_eq!(out.claims.len(), 4);
        assert!(out
            .claims
            .iter()
            .all(|o| o.partition_id.parse::<usize>().unwrap() >= 2));
        assert!(
            out.short_of_share,
            "it was below its share: run again at once"
        );
    }

    #[test]
    fn a_balanced_processor_steals_one_at_a_time_and_a_greedy_one_its_share() {
        let records: Vec<_> = (0..8).map(|p| rec(p, "a", 5)).collect();
        let balanced = plan_for(&records, 8, "b", Strategy::Balanced);
        assert_eq!(balanced.claims.len(), 1);
        assert!(balanced.short_of_share);
        assert_eq!(plan_for(&records, 8, "b", Strategy::Greedy).claims.len(), 4);
    }

    #[test]
    fn at_its_share_a_processor_only_renews_and_waits_the_interval() {
        let owner = |p: usize| ["a", "a", "a", "b", "b", "b", "c", "c"][p];
        let records: Vec<_> = (0..8).map(|p| rec(p, owner(p), 5)).collect();
        for me in ["a", "b", "c"] {
            let out = plan_for(&records, 8, me, Strategy::Balanced);
            assert!(!out.short_of_share, "{me} is at its share");
        }
        // Below the share but nothing to take (more owners than partitions): no hurry either.
        let records = vec![rec(0, "a", 5), rec(1, "b", 5)];
        assert!(!plan_for(&records, 2, "c", Strategy::Balanced).short_of_share);
    }

    #[test]
    fn three_processors_stepped_in_turn_reach_3_3_2_in_three_cycles_and_stay() {
        let ids = ids(8);
        let mut table: BTreeMap<String, Ownership> = BTreeMap::new();
        let mut version = 0u64;
        for cycle in 1..=10 {
            for me in ["a", "b", "c"] {
                let records: Vec<Ownership> = table.values().cloned().collect();
                let input = BalanceInput {
                    ownerships: &records,
                    partition_ids: &ids,
                    owner_id: me,
                    now: at(T0 + cycle),
                    expiration: Duration::from_secs(60),
                    strategy: Strategy::Balanced,
                };
                let mut seed = cycle as usize;
                for mut claim in balance(&input, &mut |n| {
                    seed = seed.wrapping_mul(31).wrapping_add(7);
                    seed % n
                }) {
                    let current = table.get(&claim.partition_id).and_then(|o| o.etag.clone());
                    if current == claim.etag {
                        version += 1;
                        claim.etag = Some(version.to_string());
                        claim.last_modified_time = at(T0 + cycle);
                        table.insert(claim.partition_id.clone(), claim);
                    }
                }
            }
            let mut counts: Vec<usize> = ["a", "b", "c"]
                .iter()
                .map(|o| table.values().filter(|r| r.owner_id == *o).count())
                .collect();
            counts.sort();
            if cycle >= 3 {
                assert_eq!(counts, vec![2, 3, 3], "after cycle {cycle}");
            }
        }
    }

    #[test]
    fn renews_what_it_has_and_stops_at_its_share() {
        let records: Vec<_> = (0..4)
            .map(|p| rec(p, if p < 2 { "a" } else { "b" }, 5))
            .collect();
        let out = run(&records, 4, "a", Strategy::Balanced);
        assert_eq!(partitions(&out), vec!["0", "1"]);
        assert!(
            out.iter().all(|o| o.etag.is_some()),
            "renewals keep their etag"
        );
    }

    #[test]
    fn expired_and_released_records_are_claimed_first() {
        let records = vec![
            rec(0, "a", 5),
            rec(1, "b", 120),
            rec(2, "", 1),
            rec(3, "b", 5),
        ];
        // Owners: a, b (b's partition 1 expired) → max 2; a has 1 → claims one claimable.
        let out = run(&records, 4, "a", Strategy::Greedy);
        assert_eq!(out.len(), 2);
        let claimed: Vec<_> = out.iter().filter(|o| o.partition_id != "0").collect();
        assert!(matches!(claimed[0].partition_id.as_str(), "1" | "2"));
        assert_eq!(
            claimed[0].etag.as_deref(),
            Some(format!("e{}", claimed[0].partition_id).as_str())
        );
    }

    #[test]
    fn steals_one_from_an_owner_above_its_share() {
        let records: Vec<_> = (0..8).map(|p| rec(p, "a", 5)).collect();
        let out = run(&records, 8, "b", Strategy::Balanced);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].owner_id, "b");
        assert_eq!(
            out[0].etag.as_deref(),
            Some(format!("e{}", out[0].partition_id).as_str())
        );
    }

    #[test]
    fn fair_floor_ceil_is_stable() {
        // 8 partitions over 3 owners: 3/3/2 must not move.
        let owner = |p: usize| ["a", "a", "a", "b", "b", "b", "c", "c"][p];
        let records: Vec<_> = (0..8).map(|p| rec(p, owner(p), 5)).collect();
        for me in ["a", "b", "c"] {
            let out = run(&records, 8, me, Strategy::Greedy);
            let held = records.iter().filter(|r| r.owner_id == me).count();
            assert_eq!(out.len(), held, "{me} must only renew");
        }
    }

    #[test]
    fn more_owners_than_partitions_leaves_the_extra_idle() {
        let records = vec![rec(0, "a", 5), rec(1, "b", 5)];
        assert!(run(&records, 2, "c", Strategy::Greedy).is_empty());
    }

    #[test]
    fn converges_from_one_to_three_without_flapping() {
        // Simulate cycles against an in-memory table with etag checks.
        let ids = ids(8);
        let mut table: BTreeMap<String, Ownership> = BTreeMap::new();
        let mut version = 0u64;
        let mut now = T0;
        let mut history = Vec::new();
        for cycle in 0..80 {
            let procs: &[&str] = if cycle < 10 { &["a"] } else { &["a", "b", "c"] };
            for me in procs {
                let records: Vec<Ownership> = table.values().cloned().collect();
                let input = BalanceInput {
                    ownerships: &records,
                    partition_ids: &ids,
                    owner_id: me,
                    now: at(now),
                    expiration: Duration::from_secs(60),
                    strategy: Strategy::Balanced,
                };
                let mut seed = cycle as usize;
                for mut claim in balance(&input, &mut |n| {
                    seed = seed.wrapping_mul(31).wrapping_add(7);
                    seed % n
                }) {
                    let current = table.get(&claim.partition_id).and_then(|o| o.etag.clone());
                    if current == claim.etag {
                        version += 1;
                        claim.etag = Some(version.to_string());
                        claim.last_modified_time = at(now);
                        table.insert(claim.partition_id.clone(), claim);
                    }
                }
            }
            now += 10;
            let mut counts: Vec<usize> = ["a", "b", "c"]
                .iter()
                .map(|o| table.values().filter(|r| r.owner_id == *o).count())
                .collect();
            counts.sort();
            history.push((
                counts,
                table
                    .values()
                    .map(|r| r.owner_id.clone())
                    .collect::<Vec<_>>(),
            ));
        }
        assert_eq!(history[9].0, vec![0, 0, 8]);
        let settled = history
            .iter()
            .position(|(c, _)| *c == vec![2, 3, 3])
            .expect("reaches 3/3/2");
        assert!(settled < 30, "converged only at cycle {settled}");
        // Once there, nobody's partitions move for the remaining cycles.
        let owners_then = &history[settled].1;
        assert!(
            history[settled..].iter().all(|(_, o)| o == owners_then),
            "ownership flapped"
        );
    }
}
