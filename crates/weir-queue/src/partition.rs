//! One share partition: the window of records between the start offset and
//! the end, each available, acquired by a consumer under a lock, or
//! settled, and the calls that move records between those states.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::error::QueueError;
use crate::{DELIVERY_LIMIT_MAX, IN_FLIGHT_MAX};

/// A partition's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// How long an acquisition lock lasts (Kafka's
    /// `group.share.record.lock.duration.ms`, 30 s).
    pub lock_ms: i64,
    /// Deliveries a record gets at most; released after the last one, it
    /// is archived and dead-lettered (`group.share.delivery.count.limit`, 5).
    pub delivery_limit: u16,
    /// Records in the window at most (`group.share.partition.max.record.locks`,
    /// 2,000): acquisition stops there until the start moves.
    pub in_flight_max: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            lock_ms: 30_000,
            delivery_limit: 5,
            in_flight_max: 2_000,
        }
    }
}

impl QueueConfig {
    pub fn validate(&self) -> Result<(), QueueError> {
        if !(1..=crate::LOCK_MS_MAX).contains(&self.lock_ms) {
            return Err(QueueError::InvalidConfig("lock_ms is out of range"));
        }
        if !(1..=DELIVERY_LIMIT_MAX).contains(&self.delivery_limit) {
            return Err(QueueError::InvalidConfig("delivery_limit is out of range"));
        }
        if !(1..=IN_FLIGHT_MAX).contains(&self.in_flight_max) {
            return Err(QueueError::InvalidConfig("in_flight_max is out of range"));
        }
        Ok(())
    }
}

/// What a consumer does with records it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    /// Processed: settled for good.
    Accept,
    /// Not processed: available again (archived if that was its last
    /// delivery).
    Release,
    /// Cannot be processed: archived and dead-lettered.
    Reject,
    /// No record at these offsets (a compacted-away record, a transaction
    /// marker, an aborted record): settled, nothing dead-lettered.
    Gap,
}

/// Records handed to a consumer: `first..=last`, each at its
/// `deliveries`-th delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    pub first: i64,
    pub last: i64,
    pub deliveries: u16,
}

/// Why a record went to the dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterReason {
    Rejected,
    /// Released (or its lock timed out) at its last allowed delivery.
    DeliveryLimit,
}

/// A record archived for a reason the dead letters should show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLetter {
    pub offset: i64,
    pub deliveries: u16,
    pub reason: DeadLetterReason,
}

/// A change to make durable before the call that made it is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `first..=last` were delivered, this many times each.
    Delivered {
        first: i64,
        last: i64,
        deliveries: u16,
    },
    /// `first..=last` are settled (accepted, archived or gaps).
    Settled { first: i64, last: i64 },
    /// Everything below `offset` is gone (the log's start moved past it).
    StartMoved { offset: i64 },
}

/// What a call changed: the changes to make durable (first) and the
/// records to dead-letter (before the changes that settle them, so a
/// crash between the two delivers the letter twice, never zero times).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub changes: Vec<Change>,
    pub dead_letters: Vec<DeadLetter>,
}

/// One acquired record as a pending list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub offset: i64,
    pub member: String,
    /// Milliseconds since it was last delivered.
    pub idle_ms: i64,
    pub deliveries: u16,
    pub deadline_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Slot {
    Available {
        deliveries: u16,
    },
    Acquired {
        member: Arc<str>,
        deliveries: u16,
        delivered_ms: i64,
        deadline_ms: i64,
    },
    Settled,
}

/// The records of one partition handed to competing consumers.
#[derive(Debug, Clone)]
pub struct SharePartition {
    pub(crate) config: QueueConfig,
    /// The first offset not settled.
    pub(crate) start: i64,
    /// `slots[i]` is offset `start + i`; the end is `start + slots.len()`.
    /// The first slot, when there is one, is never settled.
    pub(crate) slots: VecDeque<Slot>,
}

impl SharePartition {
    /// A partition whose records from `start` on are to be delivered.
    pub fn new(config: QueueConfig, start: i64) -> Result<Self, QueueError> {
        config.validate()?;
        Ok(Self {
            config,
            start: start.max(0),
            slots: VecDeque::new(),
        })
    }

    pub fn config(&self) -> QueueConfig {
        self.config
    }

    /// Sets the lock duration of later acquisitions and renewals (a queue
    /// client names its own); locks already taken keep their deadline.
    pub fn set_lock_ms(&mut self, lock_ms: i64) -> Result<(), QueueError> {
        QueueConfig {
            lock_ms,
            ..self.config
        }
        .validate()?;
        self.config.lock_ms = lock_ms;
        Ok(())
    }

    /// The first offset not settled (Kafka's share-partition start offset).
    pub fn start_offset(&self) -> i64 {
        self.start
    }

    /// The first offset never acquired.
    pub fn end_offset(&self) -> i64 {
        self.start + self.slots.len() as i64
    }

    /// Records acquired now.
    pub fn acquired_count(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Acquired { .. }))
            .count()
    }

    /// Gives `member` up to `max` records: available ones first (in offset
    /// order), then records never acquired up to `log_end`, as long as the
    /// window has room. `log_start` is the log's start: records below it
    /// are gone and leave the window.
    pub fn acquire(
        &mut self,
        member: &str,
        max: usize,
        log_start: i64,
        log_end: i64,
        now_ms: i64,
    ) -> (Vec<Acquired>, Outcome) {
        self.acquire_where(member, max, log_start, log_end, now_ms, &mut |_| true)
    }

    /// [`Self::acquire`], taking only offsets `wanted` says yes to (a
    /// persistent subscription's pinned consumer takes only its streams'
    /// events). Offsets passed over stay available, in the window, for
    /// other consumers; the window's bound counts them too. `wanted` is
    /// asked once per available or new offset, in offset order, and may
    /// remember what it said.
    pub fn acquire_where(
        &mut self,
        member: &str,
        max: usize,
        log_start: i64,
        log_end: i64,
        now_ms: i64,
        wanted: &mut dyn FnMut(i64) -> bool,
    ) -> (Vec<Acquired>, Outcome) {
        let mut outcome = Outcome::default();
        self.skip_to(log_start, &mut outcome);
        let member: Arc<str> = member.into();
        let deadline_ms = now_ms.saturating_add(self.config.lock_ms);
        let mut taken: Vec<(i64, u16)> = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if taken.len() >= max {
                break;
            }
            if let Slot::Available { deliveries } = *slot {
                if !wanted(self.start + i as i64) {
                    continue;
                }
                let deliveries = deliveries.saturating_add(1);
                *slot = Slot::Acquired {
                    member: member.clone(),
                    deliveries,
                    delivered_ms: now_ms,
                    deadline_ms,
                };
                taken.push((self.start + i as i64, deliveries));
            }
        }
        while taken.len() < max
            && self.slots.len() < self.config.in_flight_max
            && self.end_offset() < log_end
        {
            if !wanted(self.end_offset()) {
                self.slots.push_back(Slot::Available { deliveries: 0 });
                continue;
            }
            taken.push((self.end_offset(), 1));
            self.slots.push_back(Slot::Acquired {
                member: member.clone(),
                deliveries: 1,
                delivered_ms: now_ms,
                deadline_ms,
            });
        }
        // Offsets passed over at the end were never delivered: they leave
        // the window again, so it ends where a replay of the changes
        // would end it (the last slot is never a never-delivered one).
        while matches!(self.slots.back(), Some(Slot::Available { deliveries: 0 })) {
            self.slots.pop_back();
        }
        let ranges = runs(&taken);
        outcome
            .changes
            .extend(ranges.iter().map(|a| Change::Delivered {
                first: a.first,
                last: a.last,
                deliveries: a.deliveries,
            }));
        (ranges, outcome)
    }

    /// Settles or releases `first..=last`, which `member` must hold, all of
    /// them (otherwise nothing changes).
    pub fn acknowledge(
        &mut self,
        member: &str,
        first: i64,
        last: i64,
        kind: AckKind,
    ) -> Result<Outcome, QueueError> {
        self.check_held(member, first, last)?;
        let mut outcome = Outcome::default();
        for offset in first..=last {
            let i = (offset - self.start) as usize;
            let Slot::Acquired { deliveries, .. } = self.slots[i] else {
                unreachable!("checked above");
            };
            match kind {
                AckKind::Accept | AckKind::Gap => self.slots[i] = Slot::Settled,
                AckKind::Reject => {
                    self.slots[i] = Slot::Settled;
                    outcome.dead_letters.push(DeadLetter {
                        offset,
                        deliveries,
                        reason: DeadLetterReason::Rejected,
                    });
                }
                AckKind::Release => self.release_slot(i, &mut outcome),
            }
        }
        if kind != AckKind::Release {
            outcome.changes.push(Change::Settled { first, last });
        }
        self.advance_start();
        Ok(outcome)
    }

    /// Moves the lock deadline of `first..=last`, which `member` must hold,
    /// to a full lock from now (an HTTP `extend`, Kafka's RENEW).
    pub fn renew(
        &mut self,
        member: &str,
        first: i64,
        last: i64,
        now_ms: i64,
    ) -> Result<(), QueueError> {
        self.check_held(member, first, last)?;
        let deadline = now_ms.saturating_add(self.config.lock_ms);
        for offset in first..=last {
            if let Slot::Acquired { deadline_ms, .. } =
                &mut self.slots[(offset - self.start) as usize]
            {
                *deadline_ms = deadline;
            }
        }
        Ok(())
    }

    /// The earliest lock deadline, if anything is acquired: when
    /// [`Self::expire`] next has work.
    pub fn next_deadline(&self) -> Option<i64> {
        self.slots
            .iter()
            .filter_map(|s| match s {
                Slot::Acquired { deadline_ms, .. } => Some(*deadline_ms),
                _ => None,
            })
            .min()
    }

    /// Releases every record whose lock ran out by `now_ms`.
    pub fn expire(&mut self, now_ms: i64) -> Outcome {
        let mut outcome = Outcome::default();
        for i in 0..self.slots.len() {
            if matches!(self.slots[i], Slot::Acquired { deadline_ms, .. } if deadline_ms <= now_ms)
            {
                self.release_slot(i, &mut outcome);
            }
        }
        self.advance_start();
        outcome
    }

    /// Releases every record `member` holds (it left or its session ended).
    pub fn release_member(&mut self, member: &str) -> Outcome {
        let mut outcome = Outcome::default();
        for i in 0..self.slots.len() {
            if matches!(&self.slots[i], Slot::Acquired { member: m, .. } if &**m == member) {
                self.release_slot(i, &mut outcome);
            }
        }
        self.advance_start();
        outcome
    }

    /// Hands `member` up to `max` records that other consumers have held
    /// for `min_idle_ms` or longer (Redis' XAUTOCLAIM), each as a new
    /// delivery; a record past its last delivery is archived instead.
    pub fn claim_idle(
        &mut self,
        member: &str,
        min_idle_ms: i64,
        max: usize,
        now_ms: i64,
    ) -> (Vec<Acquired>, Outcome) {
        let mut outcome = Outcome::default();
        let member: Arc<str> = member.into();
        let deadline_ms = now_ms.saturating_add(self.config.lock_ms);
        let mut taken = Vec::new();
        for i in 0..self.slots.len() {
            if taken.len() >= max {
                break;
            }
            let Slot::Acquired {
                deliveries,
                delivered_ms,
                ..
            } = self.slots[i]
            else {
                continue;
            };
            if now_ms.saturating_sub(delivered_ms) < min_idle_ms {
                continue;
            }
            if deliveries >= self.config.delivery_limit {
                self.release_slot(i, &mut outcome);
                continue;
            }
            let deliveries = deliveries + 1;
            self.slots[i] = Slot::Acquired {
                member: member.clone(),
                deliveries,
                delivered_ms: now_ms,
                deadline_ms,
            };
            taken.push((self.start + i as i64, deliveries));
        }
        self.advance_start();
        let ranges = runs(&taken);
        outcome
            .changes
            .extend(ranges.iter().map(|a| Change::Delivered {
                first: a.first,
                last: a.last,
                deliveries: a.deliveries,
            }));
        (ranges, outcome)
    }

    /// Every acquired record, in offset order.
    pub fn pending(&self, now_ms: i64) -> Vec<Pending> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| match slot {
                Slot::Acquired {
                    member,
                    deliveries,
                    delivered_ms,
                    deadline_ms,
                } => Some(Pending {
                    offset: self.start + i as i64,
                    member: member.to_string(),
                    idle_ms: now_ms.saturating_sub(*delivered_ms),
                    deliveries: *deliveries,
                    deadline_ms: *deadline_ms,
                }),
                _ => None,
            })
            .collect()
    }

    /// The deliveries of `offset` so far, if it is in the window and not
    /// settled.
    pub fn deliveries(&self, offset: i64) -> Option<u16> {
        let i = usize::try_from(offset.checked_sub(self.start)?).ok()?;
        match self.slots.get(i)? {
            Slot::Available { deliveries } | Slot::Acquired { deliveries, .. } => Some(*deliveries),
            Slot::Settled => None,
        }
    }

    /// Replays a durable change (after a restart, from a snapshot's state
    /// on): what it records is applied, and nothing is acquired.
    pub fn apply(&mut self, change: &Change) {
        match *change {
            Change::Delivered {
                first,
                last,
                deliveries,
            } => {
                for offset in first.max(self.start)..=last {
                    self.extend_to(offset);
                    let i = (offset - self.start) as usize;
                    if !matches!(self.slots[i], Slot::Settled) {
                        self.slots[i] = Slot::Available { deliveries };
                    }
                }
            }
            Change::Settled { first, last } => {
                for offset in first.max(self.start)..=last {
                    self.extend_to(offset);
                    self.slots[(offset - self.start) as usize] = Slot::Settled;
                }
                self.advance_start();
            }
            Change::StartMoved { offset } => self.skip_to(offset, &mut Outcome::default()),
        }
    }

    /// What a restart leaves of this partition: every lock is gone, and
    /// what was acquired is available again with its delivery count.
    pub fn drop_locks(&mut self) {
        for slot in &mut self.slots {
            if let Slot::Acquired { deliveries, .. } = *slot {
                *slot = Slot::Available { deliveries };
            }
        }
    }

    fn check_held(&self, member: &str, first: i64, last: i64) -> Result<(), QueueError> {
        if first > last
            || last
                .checked_sub(first)
                .is_none_or(|d| d >= self.config.in_flight_max as i64)
        {
            return Err(QueueError::InvalidRange { first, last });
        }
        for offset in first..=last {
            let held = offset
                .checked_sub(self.start)
                .and_then(|d| usize::try_from(d).ok())
                .and_then(|i| self.slots.get(i))
                .is_some_and(|s| matches!(s, Slot::Acquired { member: m, .. } if &**m == member));
            if !held {
                return Err(QueueError::NotAcquired {
                    offset,
                    member: member.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Makes slot `i` (acquired) available again, or archives it at its
    /// last delivery.
    fn release_slot(&mut self, i: usize, outcome: &mut Outcome) {
        let Slot::Acquired { deliveries, .. } = self.slots[i] else {
            return;
        };
        if deliveries >= self.config.delivery_limit {
            let offset = self.start + i as i64;
            self.slots[i] = Slot::Settled;
            outcome.dead_letters.push(DeadLetter {
                offset,
                deliveries,
                reason: DeadLetterReason::DeliveryLimit,
            });
            outcome.changes.push(Change::Settled {
                first: offset,
                last: offset,
            });
        } else {
            self.slots[i] = Slot::Available { deliveries };
        }
    }

    /// Drops the settled records at the front of the window.
    pub(crate) fn advance_start(&mut self) {
        while matches!(self.slots.front(), Some(Slot::Settled)) {
            self.slots.pop_front();
            self.start += 1;
        }
    }

    /// Everything below `offset` leaves the window (the log no longer has
    /// it).
    fn skip_to(&mut self, offset: i64, outcome: &mut Outcome) {
        if offset <= self.start {
            return;
        }
        let gone = (offset - self.start).min(self.slots.len() as i64) as usize;
        self.slots.drain(..gone);
        self.start = offset;
        self.advance_start();
        outcome.changes.push(Change::StartMoved { offset });
    }

    /// Grows the window (at replay) so it holds `offset`.
    fn extend_to(&mut self, offset: i64) {
        while self.end_offset() <= offset {
            self.slots.push_back(Slot::Available { deliveries: 0 });
        }
    }
}

/// Runs of consecutive offsets with the same delivery count.
fn runs(taken: &[(i64, u16)]) -> Vec<Acquired> {
    let mut out: Vec<Acquired> = Vec::new();
    for &(offset, deliveries) in taken {
        match out.last_mut() {
            Some(run) if run.last + 1 == offset && run.deliveries == deliveries => {
                run.last = offset
            }
            _ => out.push(Acquired {
                first: offset,
                last: offset,
                deliveries,
            }),
        }
    }
    out
}
