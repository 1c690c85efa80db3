//! The broker's write path: a producer's batches checked, rewritten as
//! the topic asks and appended (idempotent producers' sequences under the
//! partition's producer lock, transactions recorded), the coordinator's
//! transaction markers, and what `read_committed` readers and new
//! producers ask of it. A child of `broker.rs`, split off for size.

use super::*;

impl Broker {
    /// Installs the checker of records for topics with schema validation
    /// on; the first one installed stays (false if one was already).
    /// The broker keeps a weak reference (the checker's registry lives on
    /// this broker): the caller keeps `validator` alive for as long as it
    /// should check. Without one, such topics refuse every produce.
    pub fn set_record_validator(&self, validator: &Arc<dyn crate::RecordValidator>) -> bool {
        self.record_validator.set(Arc::downgrade(validator)).is_ok()
    }

    /// Appends a producer's batches to a partition, returning where they
    /// landed once durable (under the broker's fsync policy). Internal
    /// topics refuse clients' writes.
    pub fn produce(
        &self,
        topic: &str,
        partition: i32,
        batches: &mut [u8],
    ) -> Result<AppendInfo, BrokerError> {
        self.produce_nowait(topic, partition, batches)?.wait()
    }

    /// Like [`Broker::produce`], but returns once the batches are written
    /// (in order with every other write to the partition), leaving the wait
    /// for durability to [`Produced::wait`]. A server answering a
    /// connection's requests in order can thus write the next request while
    /// earlier ones wait for their sync round.
    pub fn produce_nowait(
        &self,
        topic: &str,
        partition: i32,
        batches: &mut [u8],
    ) -> Result<Produced, BrokerError> {
        let t = self.topic(topic)?;
        if t.internal {
            return Err(BrokerError::InvalidTopic {
                topic: topic.to_owned(),
                reason: "internal topics are written only by Weir",
            });
        }
        let part = t.partition_state(partition)?;
        if BatchHeader::parse(batches).is_ok_and(|h| h.is_control()) {
            return Err(BrokerError::ControlRecordsRefused {
                topic: topic.to_owned(),
            });
        }
        let rules = *read(&t.rules);
        let now_ms = self.dir.clock().now_ms();
        let mut rewritten = crate::rewrite::prepare_checked(
            topic,
            partition,
            &rules,
            batches,
            (now_ms, self.config.decompressed_bytes_max),
            // Upgraded only for a topic that asks for it.
            rules
                .schemas
                .any()
                .then(|| {
                    self.record_validator
                        .get()
                        .and_then(std::sync::Weak::upgrade)
                })
                .flatten()
                .as_deref(),
        )?;
        let batches: &mut [u8] = match rewritten.as_mut() {
            Some(bytes) => bytes,
            None => batches,
        };
        let bytes = batches.len() as u64;
        let mut produced = self.append(topic, partition, &part, batches)?;
        let records = produced.info.last_offset - produced.info.base_offset + 1;
        t.traffic.count_in(records.max(0) as u64, bytes);
        if !rules.log_append_time {
            produced.info.log_append_time_ms = -1;
        }
        Ok(produced)
    }

    /// Appends checked batches to one partition: an idempotent producer's
    /// batch under its partition's producer lock, with the sequence check.
    fn append(
        &self,
        topic: &str,
        partition: i32,
        part: &Partition,
        batches: &mut [u8],
    ) -> Result<Produced, BrokerError> {
        let part = part.clone();
        let header = BatchHeader::parse(batches).ok();
        let Some(header) = header.filter(|h| h.producer_id >= 0 && h.base_sequence >= 0) else {
            let info = part
                .log
                .append_nowait(batches)
                .map_err(|e| produce_error(topic, e))?;
            return Ok(Produced {
                log: part.log,
                info,
            });
        };
        if header.total_bytes() != batches.len() {
            // Kafka's rule since Produce v3: one batch per partition; the
            // sequence check covers exactly that batch.
            return Err(produce_error(
                topic,
                weir_log::BatchError::LengthMismatch {
                    declared: header.total_bytes() as i64,
                    actual: batches.len(),
                }
                .into(),
            ));
        }
        // An idempotent producer's batch: judge and append under the
        // partition's producer lock, wait for durability outside it so
        // appends keep sharing sync rounds.
        let (pid, epoch) = (header.producer_id, header.producer_epoch);
        let meta = BatchMeta::of(&header);
        let info = {
            let mut producers = part.producers.lock().unwrap_or_else(|e| e.into_inner());
            match producers.check(pid, epoch, meta.first_seq, meta.last_seq) {
                Verdict::Append => {
                    let info = part
                        .log
                        .append_nowait(batches)
                        .map_err(|e| produce_error(topic, e))?;
                    let written = BatchMeta {
                        base_offset: info.base_offset,
                        last_offset: info.last_offset,
                        max_timestamp_ms: if header.is_log_append_time() {
                            info.log_append_time_ms
                        } else {
                            meta.max_timestamp_ms
                        },
                        ..meta
                    };
                    producers.record(pid, epoch, written);
                    if header.is_transactional() {
                        let written = BatchHeader {
                            base_offset: info.base_offset,
                            ..header
                        };
                        lock_txns(&part).observe(&written, None);
                    }
                    info
                }
                Verdict::Duplicate {
                    base_offset,
                    last_offset,
                } => AppendInfo {
                    base_offset,
                    last_offset,
                    log_append_time_ms: -1,
                },
                Verdict::OutOfOrder { expected } => {
                    return Err(BrokerError::OutOfOrderSequence {
                        topic: topic.to_owned(),
                        partition,
                        producer_id: pid,
                        expected,
                        got: meta.first_seq,
                    });
                }
                Verdict::StaleEpoch { current } => {
                    return Err(BrokerError::InvalidProducerEpoch {
                        producer_id: pid,
                        epoch,
                        current,
                    });
                }
                Verdict::UnknownProducer => {
                    return Err(BrokerError::UnknownProducerId {
                        topic: topic.to_owned(),
                        partition,
                        producer_id: pid,
                    });
                }
            }
        };
        Ok(Produced {
            log: part.log,
            info,
        })
    }

    /// Writes a transaction marker (a control batch: `commit`, or abort)
    /// of producer `producer_id` at `producer_epoch` to one partition, the
    /// coordinator's second phase; the caller waits for its durability.
    /// An epoch newer than the partition knows fences the older ones; an
    /// older one is refused.
    pub fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<Produced, BrokerError> {
        let t = self.topic(topic)?;
        let part = t.partition_state(partition)?;
        let now_ms = self.dir.clock().now_ms();
        let mut marker = crate::txn_index::marker_batch(
            producer_id,
            producer_epoch,
            commit,
            coordinator_epoch,
            now_ms,
        );
        let mut producers = part.producers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(current) = producers.epoch(producer_id).filter(|e| *e > producer_epoch) {
            return Err(BrokerError::InvalidProducerEpoch {
                producer_id,
                epoch: producer_epoch,
                current,
            });
        }
        let info = part
            .log
            .append_nowait(&mut marker)
            .map_err(|e| produce_error(topic, e))?;
        producers.marker(producer_id, producer_epoch);
        let kind = if commit {
            crate::txn_index::ControlType::Commit
        } else {
            crate::txn_index::ControlType::Abort
        };
        let header = BatchHeader::parse(&marker).map_err(LogError::from)?;
        lock_txns(&part).observe(
            &BatchHeader {
                base_offset: info.base_offset,
                ..header
            },
            Some(kind),
        );
        drop(producers);
        Ok(Produced {
            log: part.log,
            info,
        })
    }

    /// The last stable offset of a partition: where `read_committed`
    /// consumers stop (the first offset of the oldest open transaction, or
    /// the high watermark).
    pub fn last_stable_offset(&self, topic: &str, partition: i32) -> Result<i64, BrokerError> {
        self.topic(topic)?.last_stable_offset(partition)
    }

    /// The aborted transactions whose records may lie in `[from, upto)`
    /// of a partition, for a `read_committed` fetch.
    pub fn aborted_transactions(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        upto: i64,
    ) -> Result<Vec<crate::txn_index::AbortedTxn>, BrokerError> {
        self.topic(topic)?
            .aborted_transactions(partition, from, upto)
    }

    /// InitProducerId for an idempotent (not transactional) producer: a new
    /// id at epoch 0, or, for a producer that names its id and epoch
    /// (KIP-360, after UNKNOWN_PRODUCER_ID), the same id at the next epoch.
    /// Transactional producers get theirs from the transaction coordinator
    /// (`weir-txn`), which allocates ids here.
    pub fn init_producer_id(
        &self,
        producer_id: i64,
        epoch: i16,
    ) -> Result<(i64, i16), BrokerError> {
        if producer_id >= 0 && (0..i16::MAX).contains(&epoch) {
            return Ok((producer_id, epoch + 1));
        }
        Ok((self.producer_ids.allocate(&self.dir)?, 0))
    }
}
