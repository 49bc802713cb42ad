//! Routing: which agent answers which waiting thread. A pure function of the queue and the agents, so
//! that it is tested like the engine (exhaustively, with properties) and applied by the caller in one
//! transaction.
//!
//! The rules, in order: only an agent who is online and below their `max_threads` takes a thread; the
//! highest priority (set by the merchant's rules, `crate::rules`) first, then VIP customers, then the
//! longest waiting; each thread goes to the agent who has the skill a rule asked for, then who speaks
//! the shopper's language, then who has the most of the thread's labels among their skills, then who
//! has the most room left; with no agent online and free the thread stays queued.

mod store;

use chrono::NaiveDateTime;
use uuid::Uuid;

use crate::kernel::ThreadId;
pub use store::{
    LONG_WAIT_PLACE, Pass, about, dequeue, enqueue, paid_orders, queue_position, release_agent,
    release_silent, route, take,
};

crate::text_state! {
    /// An agent's presence.
    Presence {
        /// Takes threads.
        Online = "online",
        /// Signed in, not taking new threads.
        Away = "away",
        /// Gone (or their live connection is).
        Offline = "offline",
    }
}

/// An agent as routing sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Their id.
    pub id: Uuid,
    /// Two-letter language codes they answer in.
    pub languages: Vec<String>,
    /// Their skills (labels of products and room types they know).
    pub skills: Vec<String>,
    /// Online, away or offline.
    pub presence: Presence,
    /// Threads assigned to them now.
    pub open_threads: u32,
    /// The most threads they take at once.
    pub max_threads: u32,
}

impl Agent {
    fn has_room(&self) -> bool {
        self.presence == Presence::Online && self.open_threads < self.max_threads
    }
}

/// A thread waiting for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The thread.
    pub thread: ThreadId,
    /// The shopper's language, when known.
    pub language: Option<String>,
    /// The labels of what the thread is about (the advertised product's, the cart's).
    pub labels: Vec<String>,
    /// The skill a rule asked its agent to have.
    pub skill: Option<String>,
    /// Served before lower priorities (set by rules; 0 by default).
    pub priority: i32,
    /// A customer the merchant treats first.
    pub vip: bool,
    /// Since when it waits.
    pub queued_at: NaiveDateTime,
    /// The agent who let it go unanswered: not given it again.
    pub passed_over: Option<Uuid>,
}

/// Why an agent got a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// They speak the shopper's language and know what the thread is about.
    Match,
    /// They speak the shopper's language.
    Language,
    /// They know what the thread is about, not the shopper's language.
    Skills,
    /// The best free agent, without either.
    Available,
}

impl Reason {
    /// As stored and answered.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Match => "language_and_skills",
            Reason::Language => "language",
            Reason::Skills => "skills",
            Reason::Available => "available",
        }
    }
}

/// A thread given to an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The thread.
    pub thread: ThreadId,
    /// The agent.
    pub agent: Uuid,
    /// Why them.
    pub reason: Reason,
}

/// The order threads are served in: the highest priority first, then VIP, then the longest waiting
/// (then the thread id, so that equal times still give one answer).
pub fn queue_order(waiting: &mut [Waiting]) {
    waiting.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(b.vip.cmp(&a.vip))
            .then(a.queued_at.cmp(&b.queued_at))
            .then(a.thread.0.cmp(&b.thread.0))
    });
}

/// Assigns as many waiting threads as the agents have room for; the rest stay queued.
pub fn assign(waiting: &[Waiting], agents: &[Agent]) -> Vec<Assignment> {
    let mut queue = waiting.to_vec();
    queue_order(&mut queue);
    let mut agents = agents.to_vec();
    let mut assignments = Vec::new();
    for thread in &queue {
        if !agents.iter().any(Agent::has_room) {
            // Nobody has room: every thread from this one waits.
            break;
        }
        let best = agents
            .iter_mut()
            .filter(|a| a.has_room() && Some(a.id) != thread.passed_over)
            .max_by(|a, b| score(thread, a).cmp(&score(thread, b)).then(b.id.cmp(&a.id)));
        let Some(agent) = best else {
            // Only the agent who let it go unanswered has room: it waits for another.
            continue;
        };
        agent.open_threads += 1;
        let (skill, language, skills, _) = score(thread, agent);
        let reason = match (language, skill || skills > 0) {
            (true, true) => Reason::Match,
            (true, false) => Reason::Language,
            (false, true) => Reason::Skills,
            (false, false) => Reason::Available,
        };
        assignments.push(Assignment {
            thread: thread.thread,
            agent: agent.id,
            reason,
        });
    }
    assignments
}

/// How well `agent` fits `thread`: has the skill a rule asked for, speaks the language, skills among
/// its labels, room left.
fn score(thread: &Waiting, agent: &Agent) -> (bool, bool, usize, u32) {
    let has = |label: &str| agent.skills.iter().any(|s| s.eq_ignore_ascii_case(label));
    let skill = thread.skill.as_deref().is_some_and(has);
    let language = thread
        .language
        .as_ref()
        .is_some_and(|l| agent.languages.iter().any(|a| a.eq_ignore_ascii_case(l)));
    let skills = thread.labels.iter().filter(|l| has(l)).count();
    (
        skill,
        language,
        skills,
        agent.max_threads.saturating_sub(agent.open_threads),
    )
}

/// Where each queued thread stands (1 is next), in serving order.
pub fn positions(waiting: &[Waiting]) -> Vec<(ThreadId, usize)> {
    let mut queue = waiting.to_vec();
    queue_order(&mut queue);
    queue.iter().enumerate().map(|(i, w)| (w.thread, i + 1)).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(minute: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_765_000_000 + minute * 60, 0)
            .unwrap_or_default()
            .naive_utc()
    }

    fn thread(n: u128) -> ThreadId {
        ThreadId(uuid::Uuid::from_u128(n))
    }

    fn id(n: u32) -> Uuid {
        Uuid::from_u128(u128::from(n))
    }

    fn agent(n: u32, languages: &[&str], skills: &[&str], presence: Presence, open: u32, max: u32) -> Agent {
        Agent {
            id: id(n),
            languages: languages.iter().map(|l| (*l).to_owned()).collect(),
            skills: skills.iter().map(|s| (*s).to_owned()).collect(),
            presence,
            open_threads: open,
            max_threads: max,
        }
    }

    fn waiting(n: u128, language: Option<&str>, labels: &[&str], vip: bool, minute: i64) -> Waiting {
        Waiting {
            thread: thread(n),
            language: language.map(str::to_owned),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            skill: None,
            priority: 0,
            vip,
            queued_at: at(minute),
            passed_over: None,
        }
    }

    #[test]
    fn a_french_shopper_goes_to_the_french_agent() {
        let agents = [
            agent(1, &["en"], &[], Presence::Online, 0, 3),
            agent(2, &["fr", "en"], &[], Presence::Online, 0, 3),
        ];
        let got = assign(&[waiting(1, Some("fr"), &[], false, 0)], &agents);
        assert_eq!(
            got,
            [Assignment {
                thread: thread(1),
                agent: id(2),
                reason: Reason::Language
            }]
        );
    }

    #[test]
    fn skills_break_the_tie_between_agents_of_the_shoppers_language() {
        let agents = [
            agent(1, &["en"], &["stays"], Presence::Online, 0, 3),
            agent(2, &["en"], &["slippers"], Presence::Online, 0, 3),
        ];
        let got = assign(&[waiting(1, Some("en"), &["slippers"], false, 0)], &agents);
        assert_eq!(
            got,
            [Assignment {
                thread: thread(1),
                agent: id(2),
                reason: Reason::Match
            }]
        );
    }

    #[test]
    fn with_no_agent_of_the_language_online_the_best_partial_match_answers() {
        let agents = [
            agent(1, &["fr"], &[], Presence::Offline, 0, 3),
            agent(2, &["en"], &["slippers"], Presence::Online, 0, 3),
        ];
        let got = assign(&[waiting(1, Some("fr"), &["slippers"], false, 0)], &agents);
        assert_eq!(
            got,
            [Assignment {
                thread: thread(1),
                agent: id(2),
                reason: Reason::Skills
            }]
        );
    }

    #[test]
    fn at_capacity_the_thread_waits_and_the_vip_is_served_first() {
        let agents = [agent(1, &["en"], &[], Presence::Online, 1, 2)];
        let queue = [
            waiting(1, Some("en"), &[], false, 0),
            waiting(2, Some("en"), &[], true, 5),
        ];
        let got = assign(&queue, &agents);
        assert_eq!(
            got,
            [Assignment {
                thread: thread(2),
                agent: id(1),
                reason: Reason::Language
            }]
        );
        assert_eq!(positions(&queue), [(thread(2), 1), (thread(1), 2)]);
    }

    #[test]
    fn the_agent_who_let_a_thread_go_unanswered_does_not_get_it_again() {
        let agents = [
            agent(1, &["fr"], &[], Presence::Online, 0, 3),
            agent(2, &["en"], &[], Presence::Online, 0, 3),
        ];
        let thread = Waiting {
            passed_over: Some(id(1)),
            ..waiting(1, Some("fr"), &[], false, 0)
        };
        let got = assign(std::slice::from_ref(&thread), &agents);
        assert_eq!(
            got,
            [Assignment {
                thread: thread.thread,
                agent: id(2),
                reason: Reason::Available
            }]
        );
        assert!(
            assign(&[thread], &agents[..1]).is_empty(),
            "it waits rather than go back to them"
        );
    }

    #[test]
    fn a_rules_skill_goes_before_the_shoppers_language_and_its_priority_before_vip() {
        let agents = [
            agent(1, &["fr"], &[], Presence::Online, 0, 1),
            agent(2, &["en"], &["refunds"], Presence::Online, 0, 1),
        ];
        let urgent = Waiting {
            skill: Some("refunds".into()),
            priority: 10,
            ..waiting(1, Some("fr"), &[], false, 30)
        };
        let vip = waiting(2, Some("fr"), &[], true, 0);
        let got = assign(&[vip.clone(), urgent.clone()], &agents);
        assert_eq!(
            got,
            [
                Assignment {
                    thread: thread(1),
                    agent: id(2),
                    reason: Reason::Skills
                },
                Assignment {
                    thread: thread(2),
                    agent: id(1),
                    reason: Reason::Language
                }
            ]
        );
        assert_eq!(positions(&[vip, urgent]), [(thread(1), 1), (thread(2), 2)]);
    }

    #[test]
    fn away_and_offline_agents_take_nothing() {
        let agents = [
            agent(1, &["en"], &[], Presence::Away, 0, 3),
            agent(2, &["en"], &[], Presence::Offline, 0, 3),
        ];
        assert!(assign(&[waiting(1, Some("en"), &[], false, 0)], &agents).is_empty());
    }

    fn presence() -> impl Strategy<Value = Presence> {
        prop_oneof![
            Just(Presence::Online),
            Just(Presence::Away),
            Just(Presence::Offline)
        ]
    }

    fn language() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            Just(Some("en".to_owned())),
            Just(Some("fr".to_owned())),
            Just(Some("de".to_owned()))
        ]
    }

    fn agents() -> impl Strategy<Value = Vec<Agent>> {
        prop::collection::vec(
            (
                prop::sample::subsequence(vec!["en", "fr", "de"], 0..=3),
                prop::sample::subsequence(vec!["slippers", "stays", "boots"], 0..=3),
                presence(),
                0u32..4,
                0u32..4,
            ),
            0..6,
        )
        .prop_map(|rows| {
            rows.into_iter()
                .enumerate()
                .map(|(i, (languages, skills, presence, open, max))| Agent {
                    id: id(u32::try_from(i).unwrap_or_default()),
                    languages: languages.into_iter().map(str::to_owned).collect(),
                    skills: skills.into_iter().map(str::to_owned).collect(),
                    presence,
                    open_threads: open.min(max),
                    max_threads: max,
                })
                .collect()
        })
    }

    fn queue() -> impl Strategy<Value = Vec<Waiting>> {
        prop::collection::vec(
            (
                language(),
                prop::sample::subsequence(vec!["slippers", "stays", "boots"], 0..=2),
                any::<bool>(),
                0i64..60,
                prop::option::of(prop::sample::select(vec!["slippers", "stays", "boots"])),
                0i32..3,
            ),
            0..10,
        )
        .prop_map(|rows| {
            rows.into_iter()
                .enumerate()
                .map(|(i, (language, labels, vip, minute, skill, priority))| Waiting {
                    thread: thread(i as u128 + 1),
                    language,
                    labels: labels.into_iter().map(str::to_owned).collect(),
                    skill: skill.map(str::to_owned),
                    priority,
                    vip,
                    queued_at: at(minute),
                    passed_over: None,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn no_agent_ever_goes_over_capacity_or_gets_a_thread_while_not_online(agents in agents(), queue in queue()) {
            let got = assign(&queue, &agents);
            for a in &agents {
                let given = got.iter().filter(|g| g.agent == a.id).count();
                if a.presence != Presence::Online {
                    prop_assert_eq!(given, 0);
                }
                prop_assert!(a.open_threads as usize + given <= a.max_threads as usize);
            }
        }

        #[test]
        fn every_thread_is_assigned_at_most_once_and_as_many_as_there_is_room_for(agents in agents(), queue in queue()) {
            let got = assign(&queue, &agents);
            let mut threads: Vec<_> = got.iter().map(|g| g.thread).collect();
            threads.sort_by_key(|t| t.0);
            threads.dedup();
            prop_assert_eq!(threads.len(), got.len());
            let room: u32 = agents.iter().filter(|a| a.has_room()).map(|a| a.max_threads - a.open_threads).sum();
            // (No thread in these queues was passed over, so every free place is taken.)
            prop_assert_eq!(got.len(), queue.len().min(room as usize));
        }

        #[test]
        fn a_vip_never_waits_while_a_customer_who_is_not_of_the_same_priority_is_assigned(agents in agents(), queue in queue()) {
            let got = assign(&queue, &agents);
            let assigned = |t: ThreadId| got.iter().any(|g| g.thread == t);
            for p in 0..3 {
                let vip_waits = queue.iter().any(|w| w.priority == p && w.vip && !assigned(w.thread));
                let other_assigned = queue.iter().any(|w| w.priority == p && !w.vip && assigned(w.thread));
                prop_assert!(!(vip_waits && other_assigned));
            }
        }

        #[test]
        fn a_higher_priority_never_waits_while_a_lower_one_is_assigned(agents in agents(), queue in queue()) {
            let got = assign(&queue, &agents);
            let assigned = |t: ThreadId| got.iter().any(|g| g.thread == t);
            let highest_waiting = queue.iter().filter(|w| !assigned(w.thread)).map(|w| w.priority).max();
            let lowest_assigned = queue.iter().filter(|w| assigned(w.thread)).map(|w| w.priority).min();
            if let (Some(waits), Some(served)) = (highest_waiting, lowest_assigned) {
                prop_assert!(waits <= served);
            }
        }

        #[test]
        fn a_thread_goes_to_an_agent_with_the_skill_a_rule_asked_for_whenever_one_has_room(agents in agents(), queue in queue()) {
            let mut ordered = queue.clone();
            queue_order(&mut ordered);
            let Some(first) = ordered.first() else { return Ok(()); };
            let Some(skill) = first.skill.clone() else { return Ok(()); };
            let got = assign(&queue, &agents);
            let has = |a: &Agent| a.skills.contains(&skill);
            if agents.iter().any(|a| a.has_room() && has(a)) {
                let chosen = got.iter().find(|g| g.thread == first.thread).map(|g| g.agent);
                prop_assert!(agents.iter().find(|a| Some(a.id) == chosen).is_some_and(has));
            }
        }

        #[test]
        fn a_thread_goes_to_an_agent_of_its_language_whenever_one_has_room(agents in agents(), queue in queue()) {
            // Served one at a time: the agent chosen for the first thread in serving order speaks its
            // language whenever any agent with room does.
            let mut ordered = queue.clone();
            queue_order(&mut ordered);
            let Some(first) = ordered.first() else { return Ok(()); };
            let got = assign(&queue, &agents);
            let has_skill = |a: &Agent| first.skill.as_ref().is_some_and(|s| a.skills.contains(s));
            if agents.iter().any(|a| a.has_room() && has_skill(a)) {
                // A rule's skill goes first (see the property above).
                return Ok(());
            }
            let speaks = |a: &Agent| first.language.as_ref().is_some_and(|l| a.languages.contains(l));
            if agents.iter().any(|a| a.has_room() && speaks(a)) {
                let chosen = got.iter().find(|g| g.thread == first.thread).map(|g| g.agent);
                let agent = agents.iter().find(|a| Some(a.id) == chosen);
                prop_assert!(agent.is_some_and(speaks));
            }
        }
    }
}
