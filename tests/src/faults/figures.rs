//! The invariants, checked on what the clients recorded and what is stored:
//! every acknowledged message delivered to every live participant exactly
//! once, the same order for all, no seq naming two messages, and a history
//! equal to the acknowledged messages in seq order.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use super::{ClientLog, StoredMessage};

/// How many examples of each kind of problem [`Figures`] keeps.
const EXAMPLES: usize = 5;

/// One scenario's numbers; `Display` prints them on one greppable line.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub scenario: String,
    pub participants: usize,
    /// Distinct messages sent.
    pub sent: usize,
    /// `chat.send` frames written, retries included.
    pub attempts: u64,
    pub acknowledged: usize,
    /// Distinct (participant, acknowledged message) deliveries.
    pub delivered: usize,
    /// Acknowledged messages some live participant never got, counted per
    /// participant.
    pub lost: usize,
    /// Deliveries of a message the participant already had.
    pub duplicated: usize,
    /// Seqs naming two messages, and messages seen with two seqs.
    pub seq_reused: usize,
    /// Participants that saw the messages in another order than their seqs'.
    pub order_mismatches: usize,
    pub stored: usize,
    /// Acknowledged messages missing from the history (or with another seq),
    /// stored ones never acknowledged, and stored twice or out of order.
    pub history_mismatches: usize,
    /// `error` envelopes received (all retryable unless counted below).
    pub errors: u64,
    pub unexpected_errors: usize,
    pub reconnects: u64,
    /// Reconnects or rejoins answered with a fresh `chat.sync`.
    pub resyncs: u64,
    /// From the fault to the first acknowledgement after it, for the
    /// sender that waited longest.
    pub recovery: Option<Duration>,
    /// From a sender's lost connection to its next acknowledgement, at most.
    pub longest_reconnect: Option<Duration>,
    /// A few examples of each problem, for the failure message.
    pub problems: Vec<String>,
}

impl Figures {
    /// Checks the clients' logs against each other and against `history`.
    pub fn compute(
        scenario: &str,
        logs: &[ClientLog],
        history: &[StoredMessage],
        fault: Option<Instant>,
    ) -> Self {
        let mut figures = Figures {
            scenario: scenario.to_owned(),
            participants: logs.len(),
            stored: history.len(),
            ..Figures::default()
        };
        let mut acked: BTreeMap<u64, String> = BTreeMap::new();
        let mut recovery: Option<Duration> = None;
        for log in logs {
            figures.sent += log.sent.len();
            figures.attempts += log.attempts;
            figures.errors += log.errors.values().sum::<u64>();
            figures.reconnects += log.reconnects;
            figures.resyncs += log.resyncs;
            figures.unexpected_errors += log.unexpected.len();
            for frame in log.unexpected.iter().take(EXAMPLES) {
                figures.note(format!("{}: unexpected error {frame}", log.participant));
            }
            for ack in &log.acks {
                acked.insert(ack.seq, ack.message_id.clone());
            }
            // The slowest sender sets the recovery time.
            let first_after = fault.and_then(|fault| {
                let first = log.acks.iter().find(|ack| ack.at > fault)?;
                Some(first.at - fault)
            });
            recovery = recovery.max(first_after);
            figures.longest_reconnect = figures
                .longest_reconnect
                .max(log.reconnect_gaps.iter().max().copied());
        }
        figures.acknowledged = acked.len();
        figures.recovery = recovery;
        let in_order: Vec<&String> = acked.values().collect();
        let acked_ids: HashSet<&String> = in_order.iter().copied().collect();
        figures.check_seqs(logs, history);
        for log in logs {
            figures.check_deliveries(log, &in_order, &acked_ids);
        }
        figures.check_history(&acked, history);
        figures
    }

    fn note(&mut self, problem: String) {
        if self.problems.len() < EXAMPLES * 6 {
            self.problems.push(problem);
        }
    }

    /// One seq, one message, wherever it was seen.
    fn check_seqs(&mut self, logs: &[ClientLog], history: &[StoredMessage]) {
        let mut by_seq: HashMap<u64, BTreeSet<&str>> = HashMap::new();
        let mut by_id: HashMap<&str, BTreeSet<u64>> = HashMap::new();
        let seen = logs
            .iter()
            .flat_map(|log| {
                log.deliveries
                    .iter()
                    .map(|(seq, id)| (*seq, id.as_str()))
                    .chain(
                        log.acks
                            .iter()
                            .map(|ack| (ack.seq, ack.message_id.as_str())),
                    )
            })
            .chain(history.iter().map(|m| (m.seq, m.message_id.as_str())));
        for (seq, id) in seen {
            by_seq.entry(seq).or_default().insert(id);
            by_id.entry(id).or_default().insert(seq);
        }
        for (seq, ids) in by_seq.iter().filter(|(_, ids)| ids.len() > 1) {
            self.seq_reused += 1;
            self.note(format!("seq {seq} names {ids:?}"));
        }
        for (id, seqs) in by_id.iter().filter(|(_, seqs)| seqs.len() > 1) {
            self.seq_reused += 1;
            self.note(format!("{id} seen with seqs {seqs:?}"));
        }
    }

    fn check_deliveries(
        &mut self,
        log: &ClientLog,
        in_order: &[&String],
        acked: &HashSet<&String>,
    ) {
        let mut had = HashSet::new();
        let mut first_seen = Vec::new();
        for (seq, id) in &log.deliveries {
            if !had.insert(id) {
                self.duplicated += 1;
                self.note(format!("{} got {id} (seq {seq}) again", log.participant));
            } else if acked.contains(id) {
                first_seen.push(id);
            }
        }
        self.delivered += first_seen.len();
        let missing: Vec<&&String> = in_order.iter().filter(|id| !had.contains(**id)).collect();
        self.lost += missing.len();
        if !missing.is_empty() {
            self.note(format!(
                "{} never got {} acknowledged messages, e.g. {:?}",
                log.participant,
                missing.len(),
                &missing[..missing.len().min(EXAMPLES)]
            ));
        }
        let expected: Vec<&String> = in_order
            .iter()
            .copied()
            .filter(|id| had.contains(*id))
            .collect();
        if first_seen != expected {
            self.order_mismatches += 1;
            let at = first_seen
                .iter()
                .zip(&expected)
                .position(|(got, want)| got != want)
                .unwrap_or(0);
            self.note(format!(
                "{} saw another order from position {at}: {:?} where the seqs say {:?}",
                log.participant,
                &first_seen[at..(at + EXAMPLES).min(first_seen.len())],
                &expected[at..(at + EXAMPLES).min(expected.len())]
            ));
        }
    }

    fn check_history(&mut self, acked: &BTreeMap<u64, String>, history: &[StoredMessage]) {
        if !history.windows(2).all(|pair| pair[0].seq < pair[1].seq) {
            self.history_mismatches += 1;
            self.note("history is not in strictly increasing seq order".into());
        }
        let mut stored: HashMap<&str, u64> = HashMap::new();
        for message in history {
            if stored.insert(&message.message_id, message.seq).is_some() {
                self.history_mismatches += 1;
                self.note(format!("{} stored twice", message.message_id));
            }
        }
        let acked_ids: HashSet<&str> = acked.values().map(String::as_str).collect();
        for (seq, id) in acked {
            if stored.get(id.as_str()) != Some(seq) {
                self.history_mismatches += 1;
                self.note(format!(
                    "acknowledged {id} (seq {seq}) is stored as {:?}",
                    stored.get(id.as_str())
                ));
            }
        }
        // Senders retry until acknowledged, so nothing is stored unacknowledged.
        for message in history
            .iter()
            .filter(|m| !acked_ids.contains(m.message_id.as_str()))
        {
            self.history_mismatches += 1;
            self.note(format!(
                "{} stored but never acknowledged",
                message.message_id
            ));
        }
    }

    /// Fails the test unless the run kept every invariant.
    pub fn assert_clean(&self) {
        assert!(self.acknowledged > 0, "{self}: nothing was acknowledged");
        let broken = self.lost
            + self.duplicated
            + self.seq_reused
            + self.order_mismatches
            + self.history_mismatches
            + self.unexpected_errors;
        assert!(
            broken == 0,
            "{self}\ninvariants broken:\n  {}",
            self.problems.join("\n  ")
        );
    }
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = |duration: Option<Duration>| {
            duration.map_or_else(|| "-".to_owned(), |d| d.as_millis().to_string())
        };
        let (recovery, reconnect) = (millis(self.recovery), millis(self.longest_reconnect));
        write!(
            f,
            "FAULTS scenario={} participants={} sent={} attempts={} acknowledged={} \
             delivered={}/{} lost={} duplicated={} seq_reused={} order_mismatches={} \
             stored={} history_mismatches={} errors={} unexpected_errors={} reconnects={} \
             resyncs={} recovery_ms={recovery} reconnect_ms={reconnect}",
            self.scenario,
            self.participants,
            self.sent,
            self.attempts,
            self.acknowledged,
            self.delivered,
            self.acknowledged * self.participants,
            self.lost,
            self.duplicated,
            self.seq_reused,
            self.order_mismatches,
            self.stored,
            self.history_mismatches,
            self.errors,
            self.unexpected_errors,
            self.reconnects,
            self.resyncs,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Ack;

    /// A sender that sent and got `acked`, and received `deliveries`.
    fn log(name: &str, acked: &[(u64, &str)], deliveries: &[(u64, &str)]) -> ClientLog {
        let at = Instant::now();
        ClientLog {
            participant: name.into(),
            sent: acked.iter().map(|(_, id)| (*id).to_owned()).collect(),
            attempts: acked.len() as u64,
            acks: acked
                .iter()
                .map(|(seq, id)| Ack {
                    message_id: (*id).into(),
                    seq: *seq,
                    at,
                })
                .collect(),
            deliveries: deliveries
                .iter()
                .map(|(seq, id)| (*seq, (*id).to_owned()))
                .collect(),
            ..ClientLog::default()
        }
    }

    fn stored(messages: &[(u64, &str)]) -> Vec<StoredMessage> {
        messages
            .iter()
            .map(|(seq, id)| StoredMessage {
                seq: *seq,
                message_id: (*id).into(),
            })
            .collect()
    }

    const ALL: [(u64, &str); 2] = [(3, "a-0"), (5, "b-0")];

    #[test]
    fn a_clean_run_has_nothing_to_report() {
        let logs = [
            log("a", &ALL[..1], &ALL),
            log("b", &ALL[1..], &ALL),
            log("l", &[], &ALL),
        ];
        let figures = Figures::compute("clean", &logs, &stored(&ALL), None);
        figures.assert_clean();
        assert_eq!((figures.acknowledged, figures.delivered), (2, 6));
    }

    #[test]
    fn each_broken_invariant_is_counted() {
        let logs = [
            log("a", &ALL[..1], &[(3, "a-0"), (5, "b-0"), (3, "a-0")]),
            log("b", &ALL[1..], &[(5, "b-0"), (3, "a-0")]),
            log("l", &[], &[(3, "a-0")]),
        ];
        let history = stored(&[(3, "a-0"), (4, "x-0"), (5, "b-0")]);
        let figures = Figures::compute("broken", &logs, &history, None);
        assert_eq!(figures.duplicated, 1, "{:?}", figures.problems);
        assert_eq!(figures.lost, 1, "{:?}", figures.problems);
        assert_eq!(figures.order_mismatches, 1, "{:?}", figures.problems);
        assert_eq!(figures.history_mismatches, 1, "{:?}", figures.problems);
        assert_eq!(figures.seq_reused, 0, "{:?}", figures.problems);
    }

    #[test]
    fn a_seq_naming_two_messages_is_reuse() {
        let logs = [log("a", &ALL, &[(3, "a-0"), (5, "b-0"), (5, "c-0")])];
        let figures = Figures::compute("reuse", &logs, &stored(&ALL), None);
        assert_eq!(figures.seq_reused, 1, "{:?}", figures.problems);
    }
}
