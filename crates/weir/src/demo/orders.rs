//! The order saga (`weir demo orders`, D3): place order → reserve
//! inventory → charge payment → create shipment, where a failure at any
//! step compensates what came before (cancel the shipment, refund, release
//! the stock, cancel the order). The same four services run it twice: by
//! orchestration (a [`SagaRunner`] calls them in turn) and by choreography
//! (each service is a [`Service`] reacting to the others' events in the
//! store and emitting the next event, or a compensating one). Each service
//! keeps its effects in its own SQLite database, keyed by idempotency key,
//! so an effect applied twice would show; every event of an order carries
//! the order id as its correlation id.
//!
//! A run can be cut short at any effect (`crash_at`: the process aborts
//! right after the effect is committed, before anyone hears of it) and
//! then run again on the same data: the saga, or the services, resume
//! where the events stop.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::saga::{RunnerConfig, SagaDefinition, SagaRunner, Status};
use crate::service::{Selection, StoreSource};
use crate::{
    Causation, Client, Envelope, Error, ExpectedVersion, Failure, RetryPolicy, Service,
    ServiceConfig,
};

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub sku: String,
    pub quantity: u32,
    pub amount_cents: u64,
    /// Which step the demo makes fail (none, `reserve`, `charge`, `ship`).
    pub fail_at: Option<String>,
}

/// How the saga is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Orchestration,
    Choreography,
}

impl Style {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Orchestration => "orchestration",
            Self::Choreography => "choreography",
        }
    }
}

// The choreography's events.
macro_rules! order_events {
    ($($name:ident = $ty:literal),+ $(,)?) => {
        $(
            #[derive(Debug, Clone, Serialize, Deserialize)]
            pub struct $name { pub order: Order }
            crate::event!($name = $ty v 1);
        )+
    };
}

order_events! {
    OrderPlaced = "OrderPlaced",
    StockReserved = "StockReserved",
    StockRejected = "StockRejected",
    PaymentCharged = "PaymentCharged",
    PaymentDeclined = "PaymentDeclined",
    ShipmentCreated = "ShipmentCreated",
    ShipmentFailed = "ShipmentFailed",
    PaymentRefunded = "PaymentRefunded",
    StockReleased = "StockReleased",
    OrderConfirmed = "OrderConfirmed",
    OrderCancelled = "OrderCancelled",
}

/// Why a demo run failed.
#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    #[error(transparent)]
    Sdk(#[from] Error),
    #[error("a service's database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("writing the report: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out waiting for order {0} to settle")]
    Stalled(String),
}

/// The four services' effects, each in its own SQLite database, applied
/// once per idempotency key; every call is counted.
#[derive(Debug)]
pub struct Shop {
    dbs: Vec<(String, Mutex<Connection>)>,
    crash_at: Option<String>,
}

/// The services and the effects each applies.
const SERVICES: [(&str, &[&str]); 4] = [
    ("orders", &["place", "cancel", "confirm"]),
    ("inventory", &["reserve", "release"]),
    ("payments", &["charge", "refund"]),
    ("shipping", &["ship", "cancel-shipment"]),
];

impl Shop {
    /// Opens (or creates) the services' databases in `dir`. With
    /// `crash_at` naming an effect, the process aborts right after that
    /// effect is committed the first time.
    pub fn open(dir: &Path, crash_at: Option<String>) -> Result<Self, OrdersError> {
        std::fs::create_dir_all(dir)?;
        let mut dbs = Vec::new();
        for (service, _) in SERVICES {
            let conn = Connection::open(dir.join(format!("{service}.sqlite")))?;
            conn.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
                 CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, what TEXT NOT NULL, order_id TEXT NOT NULL, calls INTEGER NOT NULL);",
            )?;
            dbs.push((service.to_owned(), Mutex::new(conn)));
        }
        Ok(Self { dbs, crash_at })
    }

    fn db(&self, what: &str) -> &Mutex<Connection> {
        let i = SERVICES
            .iter()
            .position(|(_, effects)| effects.contains(&what))
            .unwrap_or(0);
        &self.dbs[i].1
    }

    /// Applies `what` for `order` under idempotency key `key`: refused for
    /// good if the order is set to fail there; applied once per key.
    pub fn apply(&self, what: &str, key: &str, order: &Order) -> Result<(), Failure> {
        if order.fail_at.as_deref() == Some(what) {
            let why = match what {
                "reserve" => "out of stock",
                "charge" => "card declined",
                "ship" => "no courier for that address",
                _ => "refused",
            };
            return Err(Failure::permanent(format!("{what}: {why}")));
        }
        let conn = self.db(what).lock().unwrap_or_else(|e| e.into_inner());
        let fresh = conn
            .execute(
                "INSERT INTO effects (key, what, order_id, calls) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT (key) DO UPDATE SET calls = calls + 1",
                (key, what, &order.id),
            )
            .and_then(|_| {
                conn.query_row("SELECT calls FROM effects WHERE key = ?1", [key], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .map_err(|e| Failure::transient(format!("{what}: {e}")))?
            == 1;
        if fresh && self.crash_at.as_deref() == Some(what) {
            // Committed, and nobody heard of it: as if the process were
            // killed here.
            std::process::abort();
        }
        Ok(())
    }

    /// The effects applied for `order`, by service, with how many calls
    /// each took: `(what, applied, calls)`.
    pub fn effects(&self, order: &str) -> Result<Vec<(String, u32, u32)>, OrdersError> {
        let mut out = Vec::new();
        for (_, db) in &self.dbs {
            let conn = db.lock().unwrap_or_else(|e| e.into_inner());
            let mut s = conn.prepare(
                "SELECT what, count(*), sum(calls) FROM effects WHERE order_id = ?1 GROUP BY what ORDER BY min(rowid)",
            )?;
            let rows = s.query_map([order], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            for row in rows {
                out.push(row?);
            }
        }
        Ok(out)
    }
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        min_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(1),
        ..RetryPolicy::default()
    }
}

/// The saga by orchestration: the steps and their compensations.
pub fn definition(shop: &Arc<Shop>) -> SagaDefinition<Order> {
    let mut d = SagaDefinition::<Order>::new("order")
        .retry(retry())
        .compensation_retry(retry())
        .step_timeout(Duration::from_secs(10));
    for (act, undo) in [
        ("place", "cancel"),
        ("reserve", "release"),
        ("charge", "refund"),
        ("ship", "cancel-shipment"),
    ] {
        let (a, u) = (shop.clone(), shop.clone());
        d = d.step(
            act,
            move |ctx, order: &Order| a.apply(act, ctx.idempotency_key, order),
            move |ctx, order: &Order| u.apply(undo, ctx.idempotency_key, order),
        );
    }
    d
}

fn key(ctx: &crate::Context<'_>, what: &str) -> String {
    format!("{}/{what}", ctx.envelope().id)
}

/// The four services of the choreography, each in its own consumer group,
/// reacting to the others' events through the store.
pub fn choreography(client: &Client, shop: &Arc<Shop>) -> Result<Vec<Service>, Error> {
    let config = || ServiceConfig {
        workers: 4,
        commit_interval: Duration::from_millis(50),
        retry: retry(),
        ..ServiceConfig::default()
    };
    let stream = |service: &str, order: &Order| format!("{service}-{}", order.id);
    // A refusal becomes the event saying so; anything else is retried.
    fn refused(r: Result<(), Failure>) -> Result<bool, Failure> {
        match r {
            Ok(()) => Ok(false),
            Err(Failure::Permanent(_)) => Ok(true),
            Err(e) => Err(e),
        }
    }
    let (c, s) = (client.clone(), shop.clone());
    let (c2, s2) = (client.clone(), shop.clone());
    let inventory = Service::builder("demo-orders-inventory")
        .config(config())
        .on::<OrderPlaced>(move |ctx, e| {
            let o = e.order;
            if refused(s.apply("reserve", &key(ctx, "reserve"), &o))? {
                ctx.emit(&c, &stream("inventory", &o), &StockRejected { order: o })
            } else {
                ctx.emit(&c, &stream("inventory", &o), &StockReserved { order: o })
            }
        })
        .on::<PaymentDeclined>({
            let (c, s) = (client.clone(), shop.clone());
            move |ctx, e| {
                s.apply("release", &key(ctx, "release"), &e.order)?;
                ctx.emit(
                    &c,
                    &stream("inventory", &e.order),
                    &StockReleased { order: e.order },
                )
            }
        })
        .on::<PaymentRefunded>(move |ctx, e| {
            s2.apply("release", &key(ctx, "release"), &e.order)?;
            ctx.emit(
                &c2,
                &stream("inventory", &e.order),
                &StockReleased { order: e.order },
            )
        })
        .build()?;
    let (c, s) = (client.clone(), shop.clone());
    let (c2, s2) = (client.clone(), shop.clone());
    let payments = Service::builder("demo-orders-payments")
        .config(config())
        .on::<StockReserved>(move |ctx, e| {
            let o = e.order;
            if refused(s.apply("charge", &key(ctx, "charge"), &o))? {
                ctx.emit(&c, &stream("payment", &o), &PaymentDeclined { order: o })
            } else {
                ctx.emit(&c, &stream("payment", &o), &PaymentCharged { order: o })
            }
        })
        .on::<ShipmentFailed>(move |ctx, e| {
            s2.apply("refund", &key(ctx, "refund"), &e.order)?;
            ctx.emit(
                &c2,
                &stream("payment", &e.order),
                &PaymentRefunded { order: e.order },
            )
        })
        .build()?;
    let (c, s) = (client.clone(), shop.clone());
    let shipping = Service::builder("demo-orders-shipping")
        .config(config())
        .on::<PaymentCharged>(move |ctx, e| {
            let o = e.order;
            if refused(s.apply("ship", &key(ctx, "ship"), &o))? {
                ctx.emit(&c, &stream("shipment", &o), &ShipmentFailed { order: o })
            } else {
                ctx.emit(&c, &stream("shipment", &o), &ShipmentCreated { order: o })
            }
        })
        .build()?;
    let (c, s) = (client.clone(), shop.clone());
    let (c2, s2) = (client.clone(), shop.clone());
    let (c3, s3) = (client.clone(), shop.clone());
    let orders = Service::builder("demo-orders-orders")
        .config(config())
        .on::<StockRejected>(move |ctx, e| {
            s.apply("cancel", &key(ctx, "cancel"), &e.order)?;
            ctx.emit(
                &c,
                &stream("order", &e.order),
                &OrderCancelled { order: e.order },
            )
        })
        .on::<StockReleased>(move |ctx, e| {
            s2.apply("cancel", &key(ctx, "cancel"), &e.order)?;
            ctx.emit(
                &c2,
                &stream("order", &e.order),
                &OrderCancelled { order: e.order },
            )
        })
        .on::<ShipmentCreated>(move |ctx, e| {
            s3.apply("confirm", &key(ctx, "confirm"), &e.order)?;
            ctx.emit(
                &c3,
                &stream("order", &e.order),
                &OrderConfirmed { order: e.order },
            )
        })
        .build()?;
    Ok(vec![inventory, payments, shipping, orders])
}

/// Places `order` for the choreography: the order service's own effect,
/// then `OrderPlaced` (idempotent: the event's id is the order's).
pub fn place(client: &Client, shop: &Shop, order: &Order) -> Result<(), OrdersError> {
    shop.apply("place", &format!("place/{}", order.id), order)
        .map_err(|f| Error::Saga {
            reason: f.to_string(),
        })?;
    let mut e = Envelope::new(
        &OrderPlaced {
            order: order.clone(),
        },
        "/demo/orders",
        &Causation::correlated(&order.id),
    )?
    .with_subject(&order.id);
    e.id = format!("order-placed-{}", order.id);
    client.append(&format!("order-{}", order.id), ExpectedVersion::Any, &[e])?;
    Ok(())
}

/// The events of `order` across the services' streams (the saga's own,
/// by orchestration), in global order: `(time, stream, type)`.
pub fn timeline(client: &Client, order: &str) -> Result<Vec<(String, String, String)>, Error> {
    let mut events = Vec::new();
    for stream in [
        format!("saga-{order}"),
        format!("order-{order}"),
        format!("inventory-{order}"),
        format!("payment-{order}"),
        format!("shipment-{order}"),
    ] {
        match client.read_stream(&stream, 0, crate::READ_PAGE_MAX) {
            Ok(page) => events.extend(page),
            Err(Error::Store(crate::StoreError::StreamNotFound { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    events.retain(|e| e.correlationid == order);
    events.sort_by_key(|e| e.position());
    // Saga events name their step by index: name it.
    let mut steps: Vec<String> = Vec::new();
    Ok(events
        .into_iter()
        .map(|e| {
            let data: serde_json::Value = serde_json::from_slice(&e.data).unwrap_or_default();
            if let Some(names) = data.get("steps").and_then(|s| s.as_array()) {
                steps = names
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect();
            }
            let step = data
                .get("step")
                .and_then(serde_json::Value::as_u64)
                .and_then(|i| steps.get(i as usize))
                .map(|n| format!(" {n}"))
                .unwrap_or_default();
            let (time, stream) = e
                .recorded
                .map(|r| (crate::rfc3339(r.recorded_ms), r.stream))
                .unwrap_or_default();
            (time, stream, format!("{}{step}", e.event_type))
        })
        .collect())
}

/// How one order settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub order: String,
    pub style: Style,
    /// `confirmed` or `cancelled`.
    pub outcome: String,
    pub effects: Vec<(String, u32, u32)>,
}

fn settled(shop: &Shop, order: &str) -> Result<Option<String>, OrdersError> {
    let effects = shop.effects(order)?;
    let has = |w: &str| effects.iter().any(|(what, _, _)| what == w);
    Ok(if has("confirm") {
        Some("confirmed".to_owned())
    } else if has("cancel") {
        Some("cancelled".to_owned())
    } else {
        None
    })
}

/// Runs `orders` by `style` on `client` with the services' databases in
/// `dir` (the same directory resumes an interrupted run), printing each
/// order's timeline and effects.
pub fn run(
    client: &Client,
    dir: &Path,
    style: Style,
    orders: &[Order],
    crash_at: Option<String>,
    out: &mut dyn Write,
) -> Result<Vec<Settled>, OrdersError> {
    let shop = Arc::new(Shop::open(dir, crash_at)?);
    let limit = Duration::from_secs(60);
    let mut report = Vec::new();
    match style {
        Style::Orchestration => {
            let runner = SagaRunner::new(
                client,
                RunnerConfig {
                    name: "demo-orders".to_owned(),
                    ..RunnerConfig::default()
                },
            )
            .with(definition(&shop))?
            .start()?;
            for o in orders {
                if crate::saga::load(client, &o.id)?.is_none() {
                    runner.start_saga("order", &o.id, o)?;
                }
            }
            for o in orders {
                let s = runner.wait(&o.id, limit)?;
                if !s.status.is_terminal() {
                    return Err(OrdersError::Stalled(o.id.clone()));
                }
                let outcome = if s.status == Status::Completed {
                    "confirmed"
                } else {
                    "cancelled"
                };
                report.push((o.id.clone(), outcome.to_owned()));
            }
            runner.stop();
        }
        Style::Choreography => {
            let services = choreography(client, &shop)?;
            let running = services
                .iter()
                .map(|s| s.start_store(StoreSource::new(client, Selection::All)))
                .collect::<Result<Vec<_>, _>>()?;
            for o in orders {
                place(client, &shop, o)?;
            }
            for o in orders {
                let start = Instant::now();
                let outcome = loop {
                    if let Some(outcome) = settled(&shop, &o.id)? {
                        break outcome;
                    }
                    if start.elapsed() > limit {
                        return Err(OrdersError::Stalled(o.id.clone()));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                };
                report.push((o.id.clone(), outcome));
            }
            for r in running {
                r.stop()?;
            }
        }
    }
    let mut settled_orders = Vec::new();
    for (id, outcome) in report {
        writeln!(out, "\norder {id} by {}: {outcome}", style.as_str())?;
        for (time, stream, event_type) in timeline(client, &id)? {
            writeln!(out, "  {time}  {stream:<28} {event_type}")?;
        }
        let effects = shop.effects(&id)?;
        let list: Vec<String> = effects
            .iter()
            .map(|(what, applied, calls)| {
                if calls > applied {
                    format!("{what} x{applied} ({calls} calls)")
                } else {
                    format!("{what} x{applied}")
                }
            })
            .collect();
        writeln!(out, "  effects: {}", list.join(", "))?;
        settled_orders.push(Settled {
            order: id,
            style,
            outcome,
            effects,
        });
    }
    Ok(settled_orders)
}

/// The showcase: for each style, one order that goes through and one
/// whose shipment fails (compensated: refund, release, cancel).
pub fn run_demo(
    client: &Client,
    dir: &Path,
    out: &mut dyn Write,
) -> Result<Vec<Settled>, OrdersError> {
    let run_id = crate::new_id().replace('-', "")[..6].to_owned();
    writeln!(
        out,
        "weir demo orders: place order -> reserve stock -> charge payment -> create shipment; a failure compensates what came before"
    )?;
    let mut all = Vec::new();
    for style in [Style::Orchestration, Style::Choreography] {
        let orders: Vec<Order> = [None, Some("ship")]
            .iter()
            .enumerate()
            .map(|(i, fail_at)| Order {
                id: format!("{}-{run_id}-{i}", &style.as_str()[..5]),
                sku: "lamp".to_owned(),
                quantity: 1 + i as u32,
                amount_cents: 4900,
                fail_at: fail_at.map(str::to_owned),
            })
            .collect();
        all.extend(run(client, dir, style, &orders, None, out)?);
    }
    Ok(all)
}

/// Where the services' databases go under a data directory (a name the
/// broker never takes for a log).
pub fn services_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(".demo-orders-services")
}
