//! The transfer process manager: its stream's events and the aggregate
//! that decides the next step of a transfer.

use super::*;

// ----- the transfer process manager -----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferStarted {
    pub from: String,
    pub to: String,
    pub amount: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecorded {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRefused {
    pub reason: String,
}

crate::events! {
    /// What happens to a transfer.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum TransferEvent {
        Started(TransferStarted) = "TransferStarted" v 1,
        Debited(StepRecorded) = "TransferSourceDebited" v 1,
        DebitRefused(StepRefused) = "TransferDebitRefused" v 1,
        Completed(StepRecorded) = "TransferCompleted" v 1,
        CreditRefused(StepRefused) = "TransferCreditRefused" v 1,
        Reversed(StepRecorded) = "TransferReversed" v 1,
    }
}

/// Where a transfer is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferStatus {
    #[default]
    New,
    Started,
    Debited,
    /// Done: the money moved.
    Completed,
    /// Done: the source refused the debit; nothing moved.
    DebitRefused,
    /// The target refused the credit; the debit is to be reversed.
    CreditRefused,
    /// Done: the debit was reversed; nothing moved.
    Reversed,
}

impl TransferStatus {
    pub fn is_done(self) -> bool {
        matches!(self, Self::Completed | Self::DebitRefused | Self::Reversed)
    }
}

/// A transfer's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub from: String,
    pub to: String,
    pub amount: u64,
    pub status: TransferStatus,
    /// Why it failed, if it did.
    pub reason: Option<String>,
}

/// What the process manager records of a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferCommand {
    Start {
        from: String,
        to: String,
        amount: u64,
    },
    Record(TransferEvent),
}

/// A transfer command out of order (a bug in the process manager, or two
/// managers racing on one transfer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transfer is {status:?}: {what} is out of order")]
pub struct TransferOutOfOrder {
    pub status: TransferStatus,
    pub what: &'static str,
}

impl Aggregate for Transfer {
    const CATEGORY: &'static str = "transfer";
    type Command = TransferCommand;
    type Event = TransferEvent;
    type Error = TransferOutOfOrder;

    fn decide(&self, command: &TransferCommand) -> Result<Vec<TransferEvent>, TransferOutOfOrder> {
        use TransferEvent as E;
        use TransferStatus as S;
        let (ok, what) = match command {
            TransferCommand::Start { .. } => (self.status == S::New, "start"),
            TransferCommand::Record(E::Debited(_) | E::DebitRefused(_)) => {
                (self.status == S::Started, "the debit")
            }
            TransferCommand::Record(E::Completed(_) | E::CreditRefused(_)) => {
                (self.status == S::Debited, "the credit")
            }
            TransferCommand::Record(E::Reversed(_)) => {
                (self.status == S::CreditRefused, "the reversal")
            }
            TransferCommand::Record(E::Started(_)) => (false, "a second start"),
        };
        if !ok {
            return Err(TransferOutOfOrder {
                status: self.status,
                what,
            });
        }
        Ok(vec![match command {
            TransferCommand::Start { from, to, amount } => E::Started(TransferStarted {
                from: from.clone(),
                to: to.clone(),
                amount: *amount,
            }),
            TransferCommand::Record(e) => e.clone(),
        }])
    }

    fn apply(&mut self, event: &TransferEvent) {
        use TransferEvent as E;
        match event {
            E::Started(s) => {
                self.from = s.from.clone();
                self.to = s.to.clone();
                self.amount = s.amount;
                self.status = TransferStatus::Started;
            }
            E::Debited(_) => self.status = TransferStatus::Debited,
            E::DebitRefused(r) => {
                self.status = TransferStatus::DebitRefused;
                self.reason = Some(r.reason.clone());
            }
            E::Completed(_) => self.status = TransferStatus::Completed,
            E::CreditRefused(r) => {
                self.status = TransferStatus::CreditRefused;
                self.reason = Some(r.reason.clone());
            }
            E::Reversed(_) => self.status = TransferStatus::Reversed,
        }
    }
}
