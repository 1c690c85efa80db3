//! The repository's retry loop through a backend that makes other writers
//! win: a command retries with fresh state a bounded number of times, then
//! fails with a contention error having appended nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir::store::{Loaded, NewEvent, RecordedEvent};
use weir::{
    Aggregate, AppendResult, AsOf, Backend, Client, CommandError, Embedded, Error, ExpectedVersion,
    RepositoryConfig, StoreError,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Added {
    pub n: u64,
}
weir::events! {
    #[derive(Debug, Clone)]
    pub enum CounterEvent { Added(Added) = "Added" v 1 }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Counter {
    total: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("zero adds nothing")]
struct Zero;

impl Aggregate for Counter {
    const CATEGORY: &'static str = "counter";
    type Command = u64;
    type Event = CounterEvent;
    type Error = Zero;
    fn decide(&self, n: &u64) -> Result<Vec<CounterEvent>, Zero> {
        if *n == 0 {
            return Err(Zero);
        }
        Ok(vec![CounterEvent::Added(Added { n: *n })])
    }
    fn apply(&mut self, CounterEvent::Added(a): &CounterEvent) {
        self.total += a.n;
    }
}

/// The embedded store, except that the next `conflicts` appends lose to
/// an imaginary writer.
#[derive(Debug)]
struct Conflicting {
    inner: Embedded,
    counts: Arc<Counts>,
}

#[derive(Debug)]
struct Counts {
    conflicts: AtomicU32,
    appends_tried: AtomicU32,
}

impl Backend for Conflicting {
    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendResult, Error> {
        self.counts.appends_tried.fetch_add(1, Ordering::SeqCst);
        let lose = self
            .counts
            .conflicts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1))
            .is_ok();
        if lose {
            return Err(Error::Store(StoreError::WrongExpectedVersion {
                stream: stream.to_owned(),
                expected,
                actual: Some(99),
            }));
        }
        self.inner.append(stream, expected, events)
    }
    fn read_stream(&self, s: &str, v: u64, n: usize) -> Result<Vec<RecordedEvent>, Error> {
        self.inner.read_stream(s, v, n)
    }
    fn read_all(&self, p: u64, n: usize) -> Result<Vec<RecordedEvent>, Error> {
        self.inner.read_all(p, n)
    }
    fn read_category(&self, c: &str, p: u64, n: usize) -> Result<Vec<RecordedEvent>, Error> {
        self.inner.read_category(c, p, n)
    }
    fn read_stream_as_of(&self, s: &str, a: AsOf, n: usize) -> Result<Vec<RecordedEvent>, Error> {
        self.inner.read_stream_as_of(s, a, n)
    }
    fn load(&self, s: &str, n: usize) -> Result<Loaded, Error> {
        self.inner.load(s, n)
    }
    fn save_snapshot(&self, s: &str, v: u64, t: &str, d: Vec<u8>) -> Result<(), Error> {
        self.inner.save_snapshot(s, v, t, d)
    }
    fn head_position(&self) -> Result<u64, Error> {
        self.inner.head_position()
    }
    fn change_epoch(&self) -> u64 {
        self.inner.change_epoch()
    }
    fn wait_changed(&self, epoch: u64, timeout: Duration) -> bool {
        self.inner.wait_changed(epoch, timeout)
    }
}

fn client(dir: &std::path::Path, conflicts: u32) -> anyhow::Result<(Client, Arc<Counts>)> {
    let counts = Arc::new(Counts {
        conflicts: AtomicU32::new(conflicts),
        appends_tried: AtomicU32::new(0),
    });
    let backend = Conflicting {
        inner: Embedded::open(dir, None)?,
        counts: counts.clone(),
    };
    let client = Client::with_backend(
        Box::new(backend),
        dir.join(".read-models"),
        "/test".to_owned(),
    );
    Ok((client, counts))
}

fn config(attempts_max: u32) -> RepositoryConfig {
    RepositoryConfig {
        attempts_max,
        backoff_ms_initial: 2,
        backoff_ms_max: 8,
        ..RepositoryConfig::default()
    }
}

#[test]
fn a_command_retries_after_conflicts_with_backoff_and_succeeds() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (client, backend) = client(dir.path(), 3)?;
    let counters = client.repository::<Counter>(config(5));
    let started = std::time::Instant::now();
    let done = counters.execute("a", &7)?;
    assert_eq!(done.attempts, 4);
    assert_eq!(done.state.total, 7);
    assert_eq!(backend.appends_tried.load(Ordering::SeqCst), 4);
    // Backoffs of at least 1, 2 and 4 ms (half of 2, 4, 8 at the least).
    assert!(started.elapsed() >= Duration::from_millis(7));
    assert_eq!(client.read_stream("counter-a", 0, 10)?.len(), 1);
    Ok(())
}

#[test]
fn a_command_gives_up_after_its_attempts_and_appends_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (client, backend) = client(dir.path(), 100)?;
    let counters = client.repository::<Counter>(config(5));
    match counters.execute("a", &7) {
        Err(CommandError::Failed(Error::Contention { stream, attempts })) => {
            assert_eq!((stream.as_str(), attempts), ("counter-a", 5));
        }
        other => panic!("expected contention, got {other:?}"),
    }
    assert_eq!(backend.appends_tried.load(Ordering::SeqCst), 5);
    assert_eq!(client.head_position()?, 0);
    // A refusal is not retried and reaches no append.
    assert!(matches!(
        counters.execute("a", &0),
        Err(CommandError::Rejected(Zero))
    ));
    assert_eq!(backend.appends_tried.load(Ordering::SeqCst), 5);
    Ok(())
}

#[test]
fn threads_of_one_repository_take_turns_on_an_aggregate_instead_of_conflicting()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?;
    let counters = client.repository::<Counter>(RepositoryConfig::default());
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let counters = counters.clone();
            std::thread::spawn(move || -> anyhow::Result<Vec<u32>> {
                (0..5)
                    .map(|_| Ok(counters.execute("hot", &1)?.attempts))
                    .collect()
            })
        })
        .collect();
    for h in handles {
        let attempts = h.join().expect("a thread panicked")?;
        assert!(attempts.iter().all(|&a| a == 1), "{attempts:?}");
    }
    assert_eq!(counters.load("hot")?.state.total, 40);
    Ok(())
}

#[test]
fn a_repository_reuses_the_state_it_wrote_until_another_writer_moves_the_stream()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?;
    let mine = client.repository::<Counter>(RepositoryConfig::default());
    let theirs = client.repository::<Counter>(RepositoryConfig::default());
    assert_eq!(mine.execute("c", &1)?.attempts, 1);
    assert_eq!(mine.execute("c", &1)?.attempts, 1);
    // Another writer appends: the state `mine` kept is one version behind.
    assert_eq!(theirs.execute("c", &10)?.state.total, 12);
    let done = mine.execute("c", &100)?;
    // The kept state lost its append on the expected version; the retry
    // loaded the stream and saw the other writer's event.
    assert_eq!((done.attempts, done.state.total), (2, 112));
    assert_eq!(mine.execute("c", &1)?.attempts, 1);
    assert_eq!(mine.load("c")?.state.total, 113);
    Ok(())
}
