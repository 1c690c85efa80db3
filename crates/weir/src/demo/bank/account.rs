//! The bank's account: its events, commands and errors, and the account
//! aggregate that never overdraws and remembers the transfer steps it took.

use super::*;

// ----- events -----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opened {
    pub owner: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    pub amount: u64,
    pub balance_after: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterestApplied {
    /// Basis points (1/100 of a percent).
    pub rate_bp: u32,
    pub amount: u64,
    pub balance_after: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferMoved {
    pub transfer_id: String,
    /// The other account.
    pub counterparty: String,
    pub amount: u64,
    pub balance_after: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed {}

crate::events! {
    /// What happens to an account.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum AccountEvent {
        Opened(Opened) = "AccountOpened" v 1,
        Deposited(Moved) = "MoneyDeposited" v 1,
        Withdrawn(Moved) = "MoneyWithdrawn" v 1,
        Interest(InterestApplied) = "InterestApplied" v 1,
        TransferDebited(TransferMoved) = "TransferDebited" v 1,
        TransferCredited(TransferMoved) = "TransferCredited" v 1,
        TransferDebitReversed(TransferMoved) = "TransferDebitReversed" v 1,
        Closed(Closed) = "AccountClosed" v 1,
    }
}

impl AccountEvent {
    /// The balance the event leaves (event-carried state), if it moves
    /// money.
    pub fn balance_after(&self) -> Option<u64> {
        match self {
            Self::Deposited(m) | Self::Withdrawn(m) => Some(m.balance_after),
            Self::Interest(i) => Some(i.balance_after),
            Self::TransferDebited(t)
            | Self::TransferCredited(t)
            | Self::TransferDebitReversed(t) => Some(t.balance_after),
            Self::Opened(_) | Self::Closed(_) => None,
        }
    }

    /// The signed amount it moves, in cents.
    pub fn delta(&self) -> i64 {
        match self {
            Self::Deposited(m) => m.amount as i64,
            Self::Withdrawn(m) => -(m.amount as i64),
            Self::Interest(i) => i.amount as i64,
            Self::TransferCredited(t) | Self::TransferDebitReversed(t) => t.amount as i64,
            Self::TransferDebited(t) => -(t.amount as i64),
            Self::Opened(_) | Self::Closed(_) => 0,
        }
    }
}

// ----- the account aggregate -----

/// What can be asked of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    Open {
        owner: String,
    },
    Deposit {
        amount: u64,
    },
    Withdraw {
        amount: u64,
    },
    ApplyInterest {
        rate_bp: u32,
    },
    /// Closing needs a zero balance.
    Close,
    TransferDebit {
        transfer_id: String,
        to: String,
        amount: u64,
    },
    TransferCredit {
        transfer_id: String,
        from: String,
        amount: u64,
    },
    TransferReverse {
        transfer_id: String,
        to: String,
        amount: u64,
    },
}

/// Why an account refuses a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    #[error("no account {0} is open")]
    NotOpen(String),
    #[error("account {0} is already open")]
    AlreadyOpen(String),
    #[error("account {0} is closed")]
    Closed(String),
    #[error("insufficient funds: account {account} holds {balance} cents, {amount} cents asked")]
    InsufficientFunds {
        account: String,
        balance: u64,
        amount: u64,
    },
    #[error("an amount must be more than 0 and at most 10^15 cents, not {0}")]
    InvalidAmount(u64),
    #[error("interest rates are 0 to 10000 basis points, not {0}")]
    InvalidRate(u32),
    #[error("account {account} holds {balance} cents: withdraw it before closing")]
    NotEmpty { account: String, balance: u64 },
}

/// The largest amount one command moves, in cents (so sums stay far
/// from overflow).
pub const AMOUNT_CENTS_MAX: u64 = 1_000_000_000_000_000;

/// An account's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub owner: String,
    pub open: bool,
    pub closed: bool,
    /// Cents; never negative (the invariant).
    pub balance: u64,
    /// The newest transfer steps taken (`debit:<id>`, ...), oldest first.
    pub transfer_steps: VecDeque<String>,
}

impl Account {
    fn usable(&self, id: &str) -> Result<(), BankError> {
        if self.closed {
            return Err(BankError::Closed(id.to_owned()));
        }
        if !self.open {
            return Err(BankError::NotOpen(id.to_owned()));
        }
        Ok(())
    }

    fn took(&self, step: &str) -> bool {
        self.transfer_steps.iter().any(|s| s == step)
    }

    fn remember(&mut self, step: String) {
        if self.transfer_steps.len() == TRANSFER_STEPS_REMEMBERED {
            self.transfer_steps.pop_front();
        }
        self.transfer_steps.push_back(step);
    }
}

pub(super) fn check_amount(amount: u64) -> Result<(), BankError> {
    if amount == 0 || amount > AMOUNT_CENTS_MAX {
        return Err(BankError::InvalidAmount(amount));
    }
    Ok(())
}

/// A command comes with the account's id (the state does not hold it),
/// which the account's refusals name.
impl Aggregate for Account {
    const CATEGORY: &'static str = "account";
    type Command = (String, AccountCommand);
    type Event = AccountEvent;
    type Error = BankError;

    fn decide(&self, (id, command): &Self::Command) -> Result<Vec<AccountEvent>, BankError> {
        use AccountCommand as C;
        use AccountEvent as E;
        let moved = |amount, balance_after| Moved {
            amount,
            balance_after,
        };
        Ok(match command {
            C::Open { owner } => {
                if self.open || self.closed {
                    return Err(BankError::AlreadyOpen(id.clone()));
                }
                vec![E::Opened(Opened {
                    owner: owner.clone(),
                })]
            }
            C::Deposit { amount } => {
                self.usable(id)?;
                check_amount(*amount)?;
                vec![E::Deposited(moved(*amount, self.balance + amount))]
            }
            C::Withdraw { amount } => {
                self.usable(id)?;
                check_amount(*amount)?;
                let Some(after) = self.balance.checked_sub(*amount) else {
                    return Err(BankError::InsufficientFunds {
                        account: id.clone(),
                        balance: self.balance,
                        amount: *amount,
                    });
                };
                vec![E::Withdrawn(moved(*amount, after))]
            }
            C::ApplyInterest { rate_bp } => {
                self.usable(id)?;
                if *rate_bp > 10_000 {
                    return Err(BankError::InvalidRate(*rate_bp));
                }
                let amount = self.balance * u64::from(*rate_bp) / 10_000;
                if amount == 0 {
                    return Ok(Vec::new());
                }
                vec![E::Interest(InterestApplied {
                    rate_bp: *rate_bp,
                    amount,
                    balance_after: self.balance + amount,
                })]
            }
            C::Close => {
                self.usable(id)?;
                if self.balance > 0 {
                    return Err(BankError::NotEmpty {
                        account: id.clone(),
                        balance: self.balance,
                    });
                }
                vec![E::Closed(Closed {})]
            }
            C::TransferDebit {
                transfer_id,
                to,
                amount,
            } => {
                if self.took(&format!("debit:{transfer_id}")) {
                    return Ok(Vec::new());
                }
                self.usable(id)?;
                check_amount(*amount)?;
                let Some(after) = self.balance.checked_sub(*amount) else {
                    return Err(BankError::InsufficientFunds {
                        account: id.clone(),
                        balance: self.balance,
                        amount: *amount,
                    });
                };
                vec![E::TransferDebited(TransferMoved {
                    transfer_id: transfer_id.clone(),
                    counterparty: to.clone(),
                    amount: *amount,
                    balance_after: after,
                })]
            }
            C::TransferCredit {
                transfer_id,
                from,
                amount,
            } => {
                if self.took(&format!("credit:{transfer_id}")) {
                    return Ok(Vec::new());
                }
                self.usable(id)?;
                check_amount(*amount)?;
                vec![E::TransferCredited(TransferMoved {
                    transfer_id: transfer_id.clone(),
                    counterparty: from.clone(),
                    amount: *amount,
                    balance_after: self.balance + amount,
                })]
            }
            C::TransferReverse {
                transfer_id,
                to,
                amount,
            } => {
                // A reversal is owed whatever happened since: it is not
                // refused on a closed account.
                if self.took(&format!("reverse:{transfer_id}")) {
                    return Ok(Vec::new());
                }
                vec![E::TransferDebitReversed(TransferMoved {
                    transfer_id: transfer_id.clone(),
                    counterparty: to.clone(),
                    amount: *amount,
                    balance_after: self.balance + amount,
                })]
            }
        })
    }

    fn apply(&mut self, event: &AccountEvent) {
        use AccountEvent as E;
        if let Some(b) = event.balance_after() {
            self.balance = b;
        }
        match event {
            E::Opened(o) => {
                self.open = true;
                self.owner = o.owner.clone();
            }
            E::Closed(_) => self.closed = true,
            E::TransferDebited(t) => self.remember(format!("debit:{}", t.transfer_id)),
            E::TransferCredited(t) => self.remember(format!("credit:{}", t.transfer_id)),
            E::TransferDebitReversed(t) => self.remember(format!("reverse:{}", t.transfer_id)),
            E::Deposited(_) | E::Withdrawn(_) | E::Interest(_) => {}
        }
    }
}
