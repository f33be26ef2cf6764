//! Admission: which entities and arms the dataflow keeps state for, under the caps
//! `max_entities` and `max_arms_per_entity`, and when it forgets them.
//!
//! The admission operator (`dataflow/admit.rs`) runs this state machine: every worker keeps
//! the same replica, fed the same [`Sighting`]s (broadcast) and deciding each tick once it is
//! complete, in an order that does not depend on arrival ([`Admission::decide`]); so every
//! worker count and every arrival order gives the same decisions.
//!
//! A pair (entity, arm) is admitted when first sighted if its entity has room for another
//! arm and, for a new entity, there is room for another entity; otherwise the record is
//! refused with that cap's reason. A pair is forgotten once `span` ticks have passed since
//! it was last sighted, unless it is declared (in the job file, or active on the arm
//! registry): `span` covers the attribution interval, the window and the lateness, so by
//! then the pair has nothing pending and nothing in the window. An entity with no pair left
//! is forgotten too, and an arm id no admitted pair uses any more; their names can go.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::event::NameId;
use crate::sparse::shrink_map;

/// The caps of `[limits]` that admission keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// Entities held at once.
    pub max_entities: usize,
    /// Arms held at once for one entity.
    pub max_arms_per_entity: usize,
    /// `[limits] require_declared_arms`: a pair that is neither declared in `[[arms]]` nor
    /// active on the arm registry (by a record of its tick or before) is refused.
    pub require_declared_arms: bool,
}

/// A pair seen at a tick: by an assignment, or by an arm registry record (`registers`: its
/// `ts` and whether it says `active`; of several in one tick the latest `ts` holds, as on
/// the registry itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Sighting {
    /// Entity id.
    pub entity: NameId,
    /// Arm id.
    pub arm: NameId,
    /// What an arm registry record said, `(ts, active)`; `None` for an assignment.
    pub registers: Option<(i64, bool)>,
}

/// Why a sighted pair was refused: its reason in the dead-letter output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A new entity while `max_entities` are held.
    #[error("max_entities")]
    MaxEntities,
    /// A new arm of an entity holding `max_arms_per_entity` arms.
    #[error("max_arms_per_entity")]
    MaxArmsPerEntity,
    /// An assignment past its source's share of `max_pending_assignments`
    /// ([`crate::pending_cap`]): a source refuses it as it reads it, never a decision.
    #[error("max_pending_assignments")]
    MaxPendingAssignments,
    /// With `require_declared_arms`, an assignment of an arm never declared (in `[[arms]]`,
    /// or active on the arm registry by its tick).
    #[error("undeclared_arm")]
    UndeclaredArm,
}

impl Refusal {
    /// Every refusal, for checking that the reject schema names them all.
    pub const ALL: [Refusal; 4] = [Refusal::MaxEntities, Refusal::MaxArmsPerEntity, Refusal::MaxPendingAssignments, Refusal::UndeclaredArm];

    /// The reason as the dead-letter output and `banditflow_malformed_total` say it.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::MaxEntities => "max_entities",
            Refusal::MaxArmsPerEntity => "max_arms_per_entity",
            Refusal::MaxPendingAssignments => "max_pending_assignments",
            Refusal::UndeclaredArm => "undeclared_arm",
        }
    }
}

/// What one tick's decision changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decided {
    /// Pairs admitted at this tick, sorted.
    pub admitted: Vec<(NameId, NameId)>,
    /// Pairs refused at this tick, sorted, with why.
    pub refused: Vec<((NameId, NameId), Refusal)>,
    /// Pairs forgotten at the end of this tick, sorted.
    pub forgotten_pairs: Vec<(NameId, NameId)>,
    /// Entities forgotten at the end of this tick, sorted.
    pub forgotten_entities: Vec<NameId>,
    /// Arm ids no admitted pair uses any more, sorted.
    pub forgotten_arms: Vec<NameId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PairState {
    /// The last tick it was sighted at.
    last: u64,
    /// Active on the arm registry (declared: never forgotten while so).
    registered: bool,
    /// Declared in the job file's `[[arms]]`: never forgotten.
    declared: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct EntityState {
    arms: FxHashMap<NameId, PairState>,
}

/// A replica's state in a checkpoint: every pair held but those the job file declares, and
/// the first tick not decided.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct AdmissionState {
    /// `(entity, arm, last tick sighted, active on the registry)`, sorted.
    pub pairs: Vec<(NameId, NameId, u64, bool)>,
    /// Every tick before this one was decided.
    pub decided: u64,
}

/// The admission replica; see the module documentation.
#[derive(Clone, Debug)]
pub struct Admission {
    caps: Caps,
    span: u64,
    entities: FxHashMap<NameId, EntityState>,
    /// How many admitted pairs use each arm id.
    arm_uses: FxHashMap<NameId, u32>,
    /// When to look again whether a pair can be forgotten: each admitted pair neither declared
    /// in the job file nor active on the registry is here, at or before its due tick (moved
    /// on lazily when it was sighted since).
    due: BTreeMap<u64, Vec<(NameId, NameId)>>,
    /// Every tick before this one is decided.
    decided: u64,
}

impl Admission {
    /// An empty replica under `caps`, forgetting pairs `span` ticks after their last
    /// sighting, with the job file's `declared` entities and arms admitted for good.
    pub fn new(caps: Caps, span: u64, declared: &[(NameId, Vec<NameId>)]) -> Self {
        let mut admission = Admission { caps, span, entities: FxHashMap::default(), arm_uses: FxHashMap::default(), due: BTreeMap::new(), decided: 0 };
        for (entity, arms) in declared {
            let state = admission.entities.entry(*entity).or_default();
            for arm in arms {
                if state.arms.insert(*arm, PairState { last: 0, registered: false, declared: true }).is_none() {
                    *admission.arm_uses.entry(*arm).or_default() += 1;
                }
            }
        }
        admission
    }

    /// The state to checkpoint (the same on every worker).
    pub fn snapshot(&self) -> AdmissionState {
        let mut pairs: Vec<(NameId, NameId, u64, bool)> = self
            .entities
            .iter()
            .flat_map(|(entity, state)| state.arms.iter().filter(|(_, p)| !p.declared).map(|(arm, p)| (*entity, *arm, p.last, p.registered)))
            .collect();
        pairs.sort_unstable();
        AdmissionState { pairs, decided: self.decided }
    }

    /// A replica as [`Admission::new`] makes it, holding what `state` held as well: each pair
    /// forgotten at the tick it would have been had there been no restart.
    pub fn restore(caps: Caps, span: u64, declared: &[(NameId, Vec<NameId>)], state: &AdmissionState) -> Self {
        let mut admission = Admission::new(caps, span, declared);
        admission.decided = state.decided;
        for &(entity, arm, last, registered) in &state.pairs {
            let held = admission.entities.entry(entity).or_default();
            if held.arms.contains_key(&arm) {
                continue; // declared now
            }
            held.arms.insert(arm, PairState { last, registered, declared: false });
            *admission.arm_uses.entry(arm).or_default() += 1;
            if !registered {
                let due = last.saturating_add(span).saturating_add(1).max(state.decided);
                admission.due.entry(due).or_default().push((entity, arm));
            }
        }
        admission
    }

    /// Entities held.
    pub fn entities(&self) -> usize {
        self.entities.len()
    }

    /// The most arms any one entity holds.
    pub fn most_arms(&self) -> usize {
        self.entities.values().map(|e| e.arms.len()).max().unwrap_or(0)
    }

    /// Every tick before this one is decided.
    pub fn decided(&self) -> u64 {
        self.decided
    }

    /// Whether a record of the pair at `tick` is admitted whatever the ticks before it
    /// decide: it is held and cannot be forgotten before `tick`. (A source may let such a
    /// record through at once; any other waits for [`Admission::decide`] of its tick.)
    pub fn admits(&self, entity: NameId, arm: NameId, tick: u64) -> bool {
        let held = self.entities.get(&entity).and_then(|e| e.arms.get(&arm));
        // An active pair may be retired in a tick not decided yet, and then goes span ticks on.
        held.is_some_and(|p| p.declared || (if p.registered { p.last.max(self.decided) } else { p.last }).saturating_add(self.span) >= tick)
    }

    /// Ticks after its last sighting a pair is forgotten.
    pub fn span(&self) -> u64 {
        self.span
    }

    /// The next tick at which something may be forgotten, if any: a tick to decide even when
    /// nothing is sighted in it, so that every replica forgets at the same ticks.
    pub fn next_due(&self) -> Option<u64> {
        self.due.keys().next().copied()
    }

    /// The caps it keeps.
    pub fn caps(&self) -> Caps {
        self.caps
    }

    /// How many arms `entity` holds, if it is held.
    pub fn arms_of(&self, entity: NameId) -> Option<usize> {
        self.entities.get(&entity).map(|e| e.arms.len())
    }

    /// Whether the pair is held now.
    pub fn holds(&self, entity: NameId, arm: NameId) -> bool {
        self.entities.get(&entity).is_some_and(|e| e.arms.contains_key(&arm))
    }

    /// Decides tick `tick` (after every earlier one) from all its `sightings`, in any order
    /// and with repeats: admits or refuses each pair, then forgets what is due.
    pub fn decide(&mut self, tick: u64, sightings: &mut Vec<Sighting>) -> Decided {
        debug_assert!(tick >= self.decided, "ticks are decided in order");
        // Arrival order must not matter: sorted, a pair's arm registry records come after its
        // assignments, in `ts` order (`retired` before `active` at the same `ts`).
        sightings.sort_unstable();
        sightings.dedup();
        let mut decided = Decided::default();
        let caps = self.caps;
        // Pairs an arm registry record of this tick declares active: their assignments of
        // this tick count as declared (the tick does not order them).
        let declared_here: Vec<(NameId, NameId)> = if caps.require_declared_arms {
            sightings.iter().filter(|s| s.registers.is_some_and(|(_, active)| active)).map(|s| (s.entity, s.arm)).collect()
        } else {
            Vec::new()
        };
        for s in sightings.drain(..) {
            let pair = (s.entity, s.arm);
            if decided.refused.last().is_some_and(|(p, _)| *p == pair) {
                continue;
            }
            let arms = self.entities.get(&s.entity).map(|e| e.arms.len());
            if arms.is_none() && self.entities.len() >= caps.max_entities {
                decided.refused.push((pair, Refusal::MaxEntities));
                continue;
            }
            // After the caps, so a record the screen refuses for a cap is refused for the same
            // reason here; before the entity is taken in, so a refused one leaves nothing.
            let held = self.entities.get(&s.entity).is_some_and(|e| e.arms.contains_key(&s.arm));
            if caps.require_declared_arms && !held && arms.unwrap_or(0) < caps.max_arms_per_entity && s.registers.is_none() && !declared_here.contains(&pair) {
                decided.refused.push((pair, Refusal::UndeclaredArm));
                continue;
            }
            let entity = self.entities.entry(s.entity).or_default();
            if let Some(p) = entity.arms.get_mut(&s.arm) {
                p.last = p.last.max(tick);
                if let Some((_, active)) = s.registers {
                    if p.registered && !active && !p.declared {
                        // Retired: forgettable again, from its last sighting on.
                        self.due.entry(tick.saturating_add(self.span).saturating_add(1)).or_default().push(pair);
                    }
                    p.registered = active;
                }
            } else if arms.unwrap_or(0) >= caps.max_arms_per_entity {
                decided.refused.push((pair, Refusal::MaxArmsPerEntity));
            } else {
                entity.arms.insert(s.arm, PairState { last: tick, registered: s.registers.is_some_and(|(_, active)| active), declared: false });
                *self.arm_uses.entry(s.arm).or_default() += 1;
                self.due.entry(tick.saturating_add(self.span).saturating_add(1)).or_default().push(pair);
                decided.admitted.push(pair);
            }
        }
        self.forget_due(tick, &mut decided);
        self.decided = tick + 1;
        decided
    }

    /// Forgets the pairs not sighted for more than `span` ticks as of the end of `tick`.
    fn forget_due(&mut self, tick: u64, decided: &mut Decided) {
        while let Some(entry) = self.due.first_entry() {
            if *entry.key() > tick {
                break;
            }
            for (entity_id, arm) in entry.remove() {
                let Some(entity) = self.entities.get_mut(&entity_id) else { continue };
                let Some(p) = entity.arms.get(&arm).copied() else { continue };
                let until = p.last.saturating_add(self.span);
                if p.registered {
                    // Active on the registry: a retirement puts it back here.
                    continue;
                }
                if until >= tick {
                    // Sighted since: look again when it can go. So a pair always goes at the
                    // end of tick last + span + 1, whatever was looked at in between.
                    self.due.entry(until.saturating_add(1)).or_default().push((entity_id, arm));
                    continue;
                }
                entity.arms.remove(&arm);
                decided.forgotten_pairs.push((entity_id, arm));
                if entity.arms.is_empty() {
                    self.entities.remove(&entity_id);
                    decided.forgotten_entities.push(entity_id);
                }
                if let Some(uses) = self.arm_uses.get_mut(&arm) {
                    *uses -= 1;
                    if *uses == 0 {
                        self.arm_uses.remove(&arm);
                        decided.forgotten_arms.push(arm);
                    }
                }
            }
        }
        if !decided.forgotten_pairs.is_empty() {
            shrink_map(&mut self.entities);
            shrink_map(&mut self.arm_uses);
        }
        decided.forgotten_pairs.sort_unstable();
        decided.forgotten_entities.sort_unstable();
        decided.forgotten_arms.sort_unstable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// However a tick's sightings are shuffled (as workers' sources would send them), the
        /// replicas decide alike, and never hold more than the caps.
        #[test]
        fn any_arrival_order_decides_alike(ticks in proptest::collection::vec(proptest::collection::vec((0u64..12, 0u64..6, 0u8..3), 0..40), 1..12), seed in any::<u64>()) {
            let mut one = Admission::new(caps(5, 3), 2, &[(0, vec![0])]);
            let mut two = one.clone();
            for (tick, seen) in ticks.iter().enumerate() {
                let sightings: Vec<Sighting> = seen
                    .iter()
                    .map(|(e, a, r)| Sighting { entity: *e, arm: *a, registers: [None, Some((7, true)), Some((7, false))][*r as usize] })
                    .collect();
                let mut shuffled = sightings.clone();
                shuffled.sort_by_key(|s| (s.entity ^ seed, s.arm.rotate_left(seed as u32 % 64), s.registers));
                prop_assert_eq!(one.decide(tick as u64, &mut sightings.clone()), two.decide(tick as u64, &mut shuffled));
                prop_assert!(one.entities() <= 5 && one.most_arms() <= 3);
            }
        }
    }

    #[test]
    fn an_active_pair_is_sure_only_a_span_beyond_the_ticks_not_decided() {
        let mut a = Admission::new(caps(1, 1), 3, &[]);
        a.decide(0, &mut vec![Sighting { entity: 1, arm: 1, registers: Some((0, true)) }]);
        assert!(a.admits(1, 1, 4));
        assert!(!a.admits(1, 1, 6), "retired in tick 1 (not decided yet), it is forgotten at the end of tick 5");
        let mut retired = a.clone();
        retired.decide(1, &mut vec![Sighting { entity: 1, arm: 1, registers: Some((1, false)) }]);
        assert!(retired.decide(5, &mut vec![]).forgotten_pairs == vec![(1, 1)]);
    }

    #[test]
    fn a_restored_replica_decides_what_the_original_goes_on_to_decide() {
        let declared = [(1, vec![10])];
        let original = Admission::new(caps(3, 2), 2, &declared);
        let ticks: Vec<Vec<Sighting>> = vec![
            vec![seen(1, 10), seen(1, 11), seen(2, 10)],
            vec![seen(3, 12), Sighting { entity: 2, arm: 13, registers: Some((5, true)) }],
            vec![seen(4, 10)],
            vec![],
            vec![Sighting { entity: 2, arm: 13, registers: Some((9, false)) }, seen(1, 12)],
            vec![seen(5, 10)],
            vec![],
            vec![],
            vec![seen(6, 10), seen(2, 13)],
            vec![],
            vec![],
            vec![],
        ];
        for cut in 0..ticks.len() {
            let mut one = original.clone();
            for (tick, seen) in ticks.iter().enumerate().take(cut) {
                one.decide(tick as u64, &mut seen.clone());
            }
            let mut restored = Admission::restore(caps(3, 2), 2, &declared, &one.snapshot());
            assert_eq!(restored.snapshot(), one.snapshot(), "cut {cut}");
            for (tick, seen) in ticks.iter().enumerate().skip(cut) {
                // The restored replica decides wherever the original does (and at its own due
                // ticks, where nothing happens).
                let (a, b) = (one.decide(tick as u64, &mut seen.clone()), restored.decide(tick as u64, &mut seen.clone()));
                assert_eq!(a, b, "cut {cut}, tick {tick}");
            }
        }
    }

    fn seen(entity: NameId, arm: NameId) -> Sighting {
        Sighting { entity, arm, registers: None }
    }

    fn caps(max_entities: usize, max_arms_per_entity: usize) -> Caps {
        Caps { max_entities, max_arms_per_entity, require_declared_arms: false }
    }

    #[test]
    fn with_declared_arms_required_only_declared_and_registered_pairs_are_admitted() {
        let strict = Caps { require_declared_arms: true, ..caps(10, 10) };
        let mut a = Admission::new(strict, 5, &[(1, vec![10])]);
        let active = |entity, arm| Sighting { entity, arm, registers: Some((0, true)) };
        // 1/10 is declared in the job; 1/11 is on the registry in the same tick; 1/12 and
        // the new entity 2 are neither.
        let d = a.decide(0, &mut vec![seen(1, 10), seen(1, 11), active(1, 11), seen(1, 12), seen(2, 20)]);
        assert_eq!(d.admitted, vec![(1, 11)]);
        assert_eq!(d.refused, vec![((1, 12), Refusal::UndeclaredArm), ((2, 20), Refusal::UndeclaredArm)]);
        assert!(!a.holds(2, 20) && a.arms_of(2).is_none(), "a refused entity leaves nothing");
        // Declared later, it is admitted from then on.
        let d = a.decide(1, &mut vec![active(1, 12), seen(1, 12)]);
        assert_eq!(d.admitted, vec![(1, 12)]);
        // The caps still come first, with their own reason.
        let mut full = Admission::new(Caps { require_declared_arms: true, ..caps(1, 10) }, 5, &[(1, vec![10])]);
        assert_eq!(full.decide(0, &mut vec![seen(2, 20)]).refused, vec![((2, 20), Refusal::MaxEntities)]);
    }

    #[test]
    fn caps_refuse_new_entities_and_arms_with_their_reasons() {
        let mut a = Admission::new(caps(2, 2), 10, &[]);
        let d = a.decide(0, &mut vec![seen(1, 10), seen(1, 11), seen(1, 12), seen(2, 10), seen(3, 10)]);
        assert_eq!(d.admitted, vec![(1, 10), (1, 11), (2, 10)]);
        assert_eq!(d.refused, vec![((1, 12), Refusal::MaxArmsPerEntity), ((3, 10), Refusal::MaxEntities)]);
        assert_eq!((a.entities(), a.most_arms()), (2, 2));
        assert!(a.admits(1, 10, 5) && !a.admits(1, 12, 5) && !a.admits(3, 10, 5));
    }

    #[test]
    fn decisions_do_not_depend_on_arrival_order_or_repeats() {
        let sightings: Vec<Sighting> = (0..50u64).map(|i| seen(i % 7, 100 + i % 5)).collect();
        let mut reversed: Vec<Sighting> = sightings.iter().rev().copied().collect();
        reversed.extend(sightings.iter().copied());
        let mut one = Admission::new(caps(4, 3), 10, &[]);
        let mut two = Admission::new(caps(4, 3), 10, &[]);
        let decided = one.decide(3, &mut sightings.clone());
        assert_eq!(decided, two.decide(3, &mut reversed));
        // The caps bind here, so the order really could have mattered.
        assert_eq!((decided.admitted.len(), decided.refused.len()), (12, 23));
    }

    #[test]
    fn a_pair_is_forgotten_span_ticks_after_it_was_last_seen_and_its_room_is_free_again() {
        let mut a = Admission::new(caps(1, 8), 3, &[]);
        assert_eq!(a.decide(0, &mut vec![seen(1, 10)]).admitted, vec![(1, 10)]);
        // Seen again at tick 2: held until 2 + 3, forgotten at the end of tick 6.
        a.decide(2, &mut vec![seen(1, 10)]);
        for tick in 3..=5 {
            let d = a.decide(tick, &mut vec![seen(2, 10)]);
            assert_eq!(d.refused, vec![((2, 10), Refusal::MaxEntities)], "tick {tick}");
            assert!(d.forgotten_entities.is_empty());
        }
        assert!(a.admits(1, 10, 5) && !a.admits(1, 10, 6));
        let d = a.decide(6, &mut Vec::new());
        assert_eq!((d.forgotten_pairs, d.forgotten_entities, d.forgotten_arms), (vec![(1, 10)], vec![1], vec![10]));
        assert_eq!(a.entities(), 0);
        assert_eq!(a.decide(7, &mut vec![seen(2, 10)]).admitted, vec![(2, 10)]);
    }

    #[test]
    fn declared_pairs_are_never_forgotten_and_arm_ids_go_with_their_last_pair() {
        let mut a = Admission::new(caps(3, 8), 1, &[(1, vec![10])]);
        let registered = Sighting { entity: 2, arm: 10, registers: Some((0, true)) };
        a.decide(0, &mut vec![registered, seen(3, 10), seen(3, 11)]);
        let mut forgotten = Decided::default();
        for tick in 1..20 {
            let d = a.decide(tick, &mut Vec::new());
            forgotten.forgotten_pairs.extend(d.forgotten_pairs);
            forgotten.forgotten_arms.extend(d.forgotten_arms);
        }
        // Entity 3 goes; arm 10 stays (entities 1 and 2 still use it), arm 11 goes.
        assert_eq!((forgotten.forgotten_pairs, forgotten.forgotten_arms), (vec![(3, 10), (3, 11)], vec![11]));
        assert!(a.holds(1, 10) && a.holds(2, 10));
        // Retired on the registry, the pair is forgotten `span` ticks later.
        a.decide(20, &mut vec![Sighting { entity: 2, arm: 10, registers: Some((20, false)) }]);
        let d = a.decide(22, &mut Vec::new());
        assert_eq!((d.forgotten_entities, d.forgotten_arms), (vec![2], vec![]));
        assert!(a.holds(1, 10));
    }

    #[test]
    fn of_two_registry_records_in_one_tick_the_later_ts_holds_whatever_they_say() {
        let mut a = Admission::new(caps(4, 4), 1, &[]);
        let active = |ts| Sighting { entity: 1, arm: 10, registers: Some((ts, true)) };
        let retired = |ts| Sighting { entity: 1, arm: 10, registers: Some((ts, false)) };
        a.decide(0, &mut vec![retired(9), active(5)]);
        assert!(a.decide(5, &mut Vec::new()).forgotten_pairs == vec![(1, 10)], "retired last: forgotten");
        a.decide(6, &mut vec![retired(5), active(9)]);
        assert!(a.decide(12, &mut Vec::new()).forgotten_pairs.is_empty(), "active last: kept");
    }

    #[test]
    fn an_undeclared_arm_of_a_declared_entity_is_forgotten_like_any_other() {
        let mut a = Admission::new(caps(4, 4), 1, &[(1, vec![10])]);
        a.decide(0, &mut vec![seen(1, 11)]);
        let d = a.decide(3, &mut Vec::new());
        assert_eq!((d.forgotten_pairs, d.forgotten_entities, d.forgotten_arms), (vec![(1, 11)], vec![], vec![11]));
        assert!(a.holds(1, 10));
    }

    #[test]
    fn a_flood_of_new_entities_holds_no_more_than_the_cap() {
        let mut a = Admission::new(caps(100, 4), 5, &[]);
        for tick in 0..100u64 {
            let mut flood: Vec<Sighting> = (0..1000).map(|i| seen(tick * 1000 + i, 1)).collect();
            let d = a.decide(tick, &mut flood);
            assert_eq!(d.admitted.len() + d.refused.len(), 1000);
            assert!(a.entities() <= 100);
            // What is held is what the due queue knows about: nothing grows beside it.
            assert!(a.due.values().map(Vec::len).sum::<usize>() <= 100);
        }
    }
}
