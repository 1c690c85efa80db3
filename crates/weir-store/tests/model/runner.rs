//! One model-test run: the store on a simulated disk beside the model,
//! each operation applied to both and the answers compared, reopens with
//! the saved index lost, damaged or stale.

use super::*;

pub(super) struct Run {
    pub(super) disk: SimStorage,
    pub(super) clock: ManualClock,
    /// `None` only while it is being reopened.
    pub(super) store: Option<Arc<EmbeddedStore>>,
    pub(super) model: Model,
    /// Appends sent so far (stream, expected version, events), for retries.
    pub(super) sent: Vec<(String, ExpectedVersion, Vec<NewEvent>)>,
    pub(super) next_id: u64,
    /// Saved indexes seen at earlier reopens, for stale ones.
    pub(super) saved: Vec<Vec<u8>>,
}

impl Run {
    pub(super) fn store(&self) -> &Arc<EmbeddedStore> {
        self.store.as_ref().expect("the store is open")
    }

    pub(super) fn now(&self) -> i64 {
        weir_log::Clock::now_ms(&self.clock)
    }

    pub(super) fn new_event(&mut self, ty: usize, metadata: u8) -> NewEvent {
        self.next_id += 1;
        let n = self.next_id;
        NewEvent {
            id: format!("e{n}"),
            event_type: TYPES[ty].to_owned(),
            data: format!("{{\"n\":{n}}}").into_bytes(),
            content_type: if ty == 2 {
                String::new()
            } else {
                "application/json".to_owned()
            },
            metadata: match metadata {
                0 => String::new(),
                1 => format!("{{\"by\":{n}}}"),
                2..=4 => format!(
                    r#"{{"source":"/model","dataversion":1,"correlationid":"{}","causationid":"e{}"}}"#,
                    CORRELATIONS[usize::from(metadata - 2)],
                    n - 1
                ),
                _ => match n % 5 {
                    0 => r#"{"correlationid":7}"#.to_owned(),
                    1 => r#"["correlationid","corr-a"]"#.to_owned(),
                    2 => r#"{"correlationid":"corr-a","correlationid":"corr-b"}"#.to_owned(),
                    3 => r#"{"x":{"correlationid":"corr-a"}}"#.to_owned(),
                    // An escape in the value: indexed as `corr-b`.
                    _ => r#" {"correlationid" : "corr-\u0062"}"#.to_owned(),
                },
            }
            .into_bytes(),
            // Every third event in a trace (every sixth with a state too):
            // the store keeps it as the model does.
            trace: n.is_multiple_of(3).then(|| {
                let state = n.is_multiple_of(2).then_some("weir=model");
                weir_store::TraceContext::parse(&format!("00-{n:032x}-{n:016x}-01"), state)
                    .expect("a valid traceparent")
            }),
        }
    }

    pub(super) fn append(
        &mut self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<(), TestCaseError> {
        let now = self.now();
        let want = self.model.append(stream, expected, &events, now);
        let head = self.store().head_position();
        let have = got(self.store().append(stream, expected, &events));
        prop_assert_eq!(
            &have,
            &want,
            "append to {} expecting {} of {:?}",
            stream,
            expected,
            events.iter().map(|e| &e.id).collect::<Vec<_>>()
        );
        // A retry or a refusal writes nothing.
        let written = have.as_ref().is_ok_and(|r| r.first_position >= head);
        prop_assert_eq!(self.store().head_position(), self.model.head());
        prop_assert_eq!(self.store().head_position() > head, written);
        self.sent.push((stream.to_owned(), expected, events));
        Ok(())
    }

    pub(super) fn reopen(&mut self, fate: &Fate) -> Result<(), TestCaseError> {
        let head = self.model.head();
        // The only holder: dropping it saves the index and closes the
        // data directory.
        drop(self.store.take());
        let current = read_saved_index(&self.disk);
        if let Some(bytes) = &current {
            prop_assert_eq!(
                covered(bytes),
                head,
                "the index saved at close covers the log"
            );
            self.saved.push(bytes.clone());
        }
        // Where the reopened store's saved index should have left off.
        let expected_saved = match (fate, &current) {
            (_, None) => None,
            (Fate::Keep, Some(_)) => Some(head),
            (Fate::Delete, Some(_)) => {
                remove_saved_index(&self.disk);
                None
            }
            (Fate::Corrupt { at, xor }, Some(bytes)) => {
                let mut bytes = bytes.clone();
                let i = (bytes.len() as f64 * at) as usize;
                bytes[i] ^= xor;
                write_saved_index(&self.disk, &bytes);
                None
            }
            (Fate::Truncate { at }, Some(bytes)) => {
                write_saved_index(&self.disk, &bytes[..(bytes.len() as f64 * at) as usize]);
                None
            }
            (Fate::Garbage(bytes), Some(_)) => {
                write_saved_index(&self.disk, bytes);
                None
            }
            (Fate::Stale { pick }, Some(_)) => {
                let bytes = self.saved[pick % self.saved.len()].clone();
                write_saved_index(&self.disk, &bytes);
                Some(covered(&bytes))
            }
        };
        self.store = Some(Arc::new(open_sim(&self.disk, &self.clock)));
        let recovery = self.store().recovery();
        prop_assert_eq!(
            recovery.saved_index_position,
            expected_saved,
            "after {:?}",
            fate
        );
        prop_assert_eq!(
            recovery.events_replayed,
            head - expected_saved.unwrap_or(0),
            "after {:?}",
            fate
        );
        self.check_everything()
    }

    /// Every read of every stream, category and type, and every stream's
    /// version, settings and aggregate, against the model.
    pub(super) fn check_everything(&self) -> Result<(), TestCaseError> {
        let (store, model, now) = (self.store(), &self.model, self.now());
        let all = usize::MAX;
        prop_assert_eq!(store.head_position(), model.head());
        for d in [Direction::Forward, Direction::Backward] {
            let from = if d == Direction::Forward { 0 } else { u64::MAX };
            prop_assert_eq!(
                got(store.read_all(from, d, all)),
                Ok(model.global(|_| true, from, d, all, now)),
                "read_all {:?}",
                d
            );
            for s in STREAMS {
                prop_assert_eq!(
                    got(store.read_stream(s, from, d, all)),
                    model.read_stream(s, from, d, all, now),
                    "stream {} {:?}",
                    s,
                    d
                );
            }
            for c in CATEGORIES {
                prop_assert_eq!(
                    got(store.read_category(c, from, d, all)),
                    Ok(model.global(|e| category_of(&e.stream) == Some(c), from, d, all, now)),
                    "category {} {:?}",
                    c,
                    d
                );
            }
            for t in TYPES {
                prop_assert_eq!(
                    got(store.read_type(t, from, d, all)),
                    Ok(model.global(|e| e.event_type == t, from, d, all, now)),
                    "type {} {:?}",
                    t,
                    d
                );
            }
        }
        for c in CORRELATIONS {
            let forward = Direction::Forward;
            prop_assert_eq!(
                got(store.read_correlation(c, 0, all)),
                Ok(model.global(|e| in_correlation(e, c), 0, forward, all, now)),
                "correlation {}",
                c
            );
        }
        for s in STREAMS {
            prop_assert_eq!(
                got(store.stream_version(s)),
                model.stream_version(s),
                "version of {}",
                s
            );
            prop_assert_eq!(
                got(store.stream_metadata(s)),
                model.stream_metadata(s),
                "metadata of {}",
                s
            );
            prop_assert_eq!(
                got(store.load(s, all).map(|l| (l.snapshot, l.events))),
                model.load(s, all, now),
                "load {}",
                s
            );
        }
        Ok(())
    }

    pub(super) fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let now = self.now();
        match op {
            Op::Append {
                stream,
                expected,
                events,
            } => {
                let stream = STREAMS[*stream];
                let expected = self.model.resolve(stream, expected);
                let events = events
                    .iter()
                    .map(|&(ty, meta)| self.new_event(ty, meta))
                    .collect();
                self.append(stream, expected, events)?;
            }
            Op::Again { pick, how } => {
                if self.sent.is_empty() {
                    return Ok(());
                }
                let (mut stream, mut expected, mut events) =
                    self.sent[pick % self.sent.len()].clone();
                match how {
                    Again::Same => {}
                    Again::Prefix => events.truncate(1),
                    Again::Extended => events.push(self.new_event(0, 2)),
                    Again::OtherStream(s) => stream = STREAMS[*s].to_owned(),
                    Again::OtherExpected(e) => expected = self.model.resolve(&stream, e),
                }
                self.append(&stream, expected, events)?;
            }
            Op::ReadStream {
                stream,
                from,
                backward,
                max,
            } => {
                let stream = STREAMS[*stream];
                let end = self.model.last(stream).map_or(0, |v| v + 1);
                let (from, d) = (point(end, *from), direction(*backward));
                prop_assert_eq!(
                    got(self.store().read_stream(stream, from, d, *max)),
                    self.model.read_stream(stream, from, d, *max, now),
                    "read_stream {} from {} {:?} max {}",
                    stream,
                    from,
                    d,
                    max
                );
            }
            Op::ReadAll {
                from,
                backward,
                max,
            } => {
                let (from, d) = (point(self.model.head(), *from), direction(*backward));
                prop_assert_eq!(
                    got(self.store().read_all(from, d, *max)),
                    Ok(self.model.global(|_| true, from, d, *max, now)),
                    "read_all from {} {:?} max {}",
                    from,
                    d,
                    max
                );
            }
            Op::ReadCategory {
                category,
                from,
                backward,
                max,
            } => {
                let c = CATEGORIES[*category];
                let (from, d) = (point(self.model.head(), *from), direction(*backward));
                prop_assert_eq!(
                    got(self.store().read_category(c, from, d, *max)),
                    Ok(self.model.global(
                        |e| category_of(&e.stream) == Some(c),
                        from,
                        d,
                        *max,
                        now
                    )),
                    "read_category {} from {} {:?} max {}",
                    c,
                    from,
                    d,
                    max
                );
            }
            Op::ReadType {
                ty,
                from,
                backward,
                max,
            } => {
                let t = TYPES[*ty];
                let (from, d) = (point(self.model.head(), *from), direction(*backward));
                prop_assert_eq!(
                    got(self.store().read_type(t, from, d, *max)),
                    Ok(self.model.global(|e| e.event_type == t, from, d, *max, now)),
                    "read_type {} from {} {:?} max {}",
                    t,
                    from,
                    d,
                    max
                );
            }
            Op::ReadCorrelation { which, from, max } => {
                let c = CORRELATIONS[*which];
                let from = point(self.model.head(), *from);
                let forward = Direction::Forward;
                prop_assert_eq!(
                    got(self.store().read_correlation(c, from, *max)),
                    Ok(self
                        .model
                        .global(|e| in_correlation(e, c), from, forward, *max, now)),
                    "read_correlation {} from {} max {}",
                    c,
                    from,
                    max
                );
            }
            Op::AsOf {
                stream,
                at,
                by_time,
                max,
            } => {
                let stream = STREAMS[*stream];
                let as_of = if *by_time {
                    AsOf::Time(START_MS + ((now - START_MS + 1) as f64 * at) as i64)
                } else {
                    AsOf::Position(point(self.model.head(), *at))
                };
                let want = self.model.visible_stream(stream, now).map(|events| {
                    events
                        .into_iter()
                        .take_while(|e| match as_of {
                            AsOf::Position(p) => e.position <= p,
                            AsOf::Time(t) => e.recorded_ms <= t,
                        })
                        .take(*max)
                        .cloned()
                        .collect::<Vec<_>>()
                });
                prop_assert_eq!(
                    got(self.store().read_stream_as_of(stream, as_of, *max)),
                    want,
                    "{} as of {:?} max {}",
                    stream,
                    as_of,
                    max
                );
            }
            Op::Delete { stream, expected } => {
                let stream = STREAMS[*stream];
                let expected = self.model.resolve(stream, expected);
                prop_assert_eq!(
                    got(self.store().delete_stream(stream, expected)),
                    self.model.delete(stream, expected, now),
                    "delete {} expecting {}",
                    stream,
                    expected
                );
            }
            Op::Tombstone { stream, expected } => {
                let stream = STREAMS[*stream];
                let expected = self.model.resolve(stream, expected);
                prop_assert_eq!(
                    got(self.store().tombstone_stream(stream, expected)),
                    self.model.tombstone(stream, expected, now),
                    "tombstone {} expecting {}",
                    stream,
                    expected
                );
            }
            Op::SetMetadata {
                stream,
                max_age_ms,
                max_count,
                truncate_before,
            } => {
                let stream = STREAMS[*stream];
                let settings = StreamMetadata {
                    max_age_ms: *max_age_ms,
                    max_count: *max_count,
                    truncate_before: *truncate_before,
                };
                prop_assert_eq!(
                    got(self.store().set_stream_metadata(stream, &settings)),
                    self.model.set_metadata(stream, &settings, now),
                    "set metadata of {} to {:?}",
                    stream,
                    settings
                );
            }
            Op::AdvanceClock(ms) => self.clock.advance(*ms),
            Op::SaveSnapshot { stream, back, past } => {
                let stream = STREAMS[*stream];
                let current = self.model.effective(stream).unwrap_or(0);
                let version = if *past {
                    current + 1
                } else {
                    current.saturating_sub(*back)
                };
                let data = format!("state of {stream} at {version}").into_bytes();
                prop_assert_eq!(
                    got(self
                        .store()
                        .save_snapshot(stream, version, "State", data.clone())),
                    self.model.save_snapshot(stream, version, data, now),
                    "snapshot of {} at {}",
                    stream,
                    version
                );
            }
            Op::Load { stream, max } => {
                let stream = STREAMS[*stream];
                prop_assert_eq!(
                    got(self
                        .store()
                        .load(stream, *max)
                        .map(|l| (l.snapshot, l.events))),
                    self.model.load(stream, *max, now),
                    "load {} max {}",
                    stream,
                    max
                );
            }
            Op::Subscribe {
                target,
                which,
                types,
                prefix,
                from,
                page,
            } => self.subscribe(*target, *which, *types, *prefix, *from, *page)?,
            Op::Maintain => {
                self.store().maintain(true).expect("save the index");
                let saved = read_saved_index(&self.disk).map(|b| covered(&b));
                let head = self.model.head();
                prop_assert_eq!(saved, (head > 0).then_some(head));
            }
            Op::Reopen(fate) => self.reopen(fate)?,
        }
        Ok(())
    }

    /// A subscription polled until it has nothing more delivers exactly
    /// the visible events its target and filter select, in order.
    pub(super) fn subscribe(
        &self,
        target: u8,
        which: usize,
        types: u8,
        prefix: bool,
        from: From,
        page: usize,
    ) -> Result<(), TestCaseError> {
        let now = self.now();
        let filter = Filter {
            event_types: (0..TYPES.len())
                .filter(|i| types & (1 << i) != 0)
                .map(|i| TYPES[i].to_owned())
                .collect(),
            stream_prefix: prefix.then(|| "acc-".to_owned()),
        };
        let keeps = |e: &RecordedEvent| {
            (filter.event_types.is_empty() || filter.event_types.contains(&e.event_type))
                && filter
                    .stream_prefix
                    .as_ref()
                    .is_none_or(|p| e.stream.starts_with(p.as_str()))
        };
        let (target, want) = match target {
            0 => {
                let from = point(self.model.head(), from);
                let want = self
                    .model
                    .global(keeps, from, Direction::Forward, usize::MAX, now);
                (Target::All, (from, Ok(want)))
            }
            1 => {
                let c = CATEGORIES[which % CATEGORIES.len()];
                let from = point(self.model.head(), from);
                let want = self.model.global(
                    |e| category_of(&e.stream) == Some(c) && keeps(e),
                    from,
                    Direction::Forward,
                    usize::MAX,
                    now,
                );
                (Target::Category(c.to_owned()), (from, Ok(want)))
            }
            _ => {
                let s = STREAMS[which % STREAMS.len()];
                let end = self.model.last(s).map_or(0, |v| v + 1);
                let from = point(end, from);
                let want =
                    match self
                        .model
                        .read_stream(s, from, Direction::Forward, usize::MAX, now)
                    {
                        Ok(events) => Ok(events.into_iter().filter(|e| keeps(e)).collect()),
                        Err(Fail::NotFound) => Ok(Vec::new()),
                        Err(e) => Err(e),
                    };
                (Target::Stream(s.to_owned()), (from, want))
            }
        };
        let (from, want) = want;
        let mut sub = self.store().subscribe(target.clone(), filter.clone(), from);
        let mut delivered = Vec::new();
        let have = loop {
            match sub.poll(page) {
                Ok(events) if events.is_empty() => break Ok(delivered),
                Ok(events) => {
                    prop_assert!(events.len() <= page, "a poll returned more than asked");
                    delivered.extend(events);
                    prop_assert!(delivered.len() <= self.model.events.len(), "endless");
                }
                Err(e) => break Err(fail_of(e)),
            }
        };
        prop_assert_eq!(
            have,
            want,
            "subscription to {:?} from {} with {:?}",
            target,
            from,
            filter
        );
        Ok(())
    }
}
