//! The customer events the versioned-event tests share: three versions
//! of `CustomerRegistered` over the years (v1 `{name}`, v2 `{first,
//! last}`, v3 adds `tier`), the current Rust types, their upcasters and
//! their JSON Schemas.

#![allow(dead_code, reason = "each test file uses a different subset")]

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weir::{Aggregate, EventSchemas, EventType, Upcasters};

/// The first shape, kept only to write old events as they were written.
pub mod v1 {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Registered {
        pub name: String,
    }
    weir::event!(Registered = "CustomerRegistered" v 1);
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    pub first: String,
    pub last: String,
    pub tier: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    pub city: String,
}

weir::events! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum CustomerEvent {
        Registered(Registered) = "CustomerRegistered" v 3,
        Moved(Moved) = "CustomerMoved" v 1,
    }
}

impl EventSchemas for CustomerEvent {
    fn json_schema(t: EventType) -> Option<Value> {
        match (t.name, t.version) {
            ("CustomerRegistered", 3) => Some(json!({
                "type": "object",
                "properties": {
                    "first": {"type": "string"},
                    "last": {"type": "string"},
                    "tier": {"type": "string"}
                },
                "required": ["first", "last", "tier"]
            })),
            ("CustomerMoved", 1) => Some(json!({
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"]
            })),
            _ => None,
        }
    }
}

/// v1 -> v2 splits the name at its first space (a name without one
/// fails); v2 -> v3 adds the tier every customer had before tiers.
pub fn upcasters() -> Upcasters {
    let mut u = Upcasters::new();
    u.declare::<CustomerEvent>().unwrap();
    u.add("CustomerRegistered", 1, |v| {
        let name = v["name"].as_str().ok_or("no name")?;
        let (first, last) = name
            .split_once(' ')
            .ok_or_else(|| format!("the name {name:?} has no space"))?;
        Ok(json!({"first": first, "last": last}))
    })
    .unwrap();
    u.add("CustomerRegistered", 2, |mut v| {
        v["tier"] = json!("basic");
        Ok(v)
    })
    .unwrap();
    u
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub first: String,
    pub last: String,
    pub tier: String,
    pub city: Option<String>,
}

pub enum Command {
    Register { first: String, last: String },
    Move(String),
}

#[derive(Debug, thiserror::Error)]
#[error("never refused")]
pub struct Never;

impl Aggregate for Customer {
    const CATEGORY: &'static str = "customer";
    type Command = Command;
    type Event = CustomerEvent;
    type Error = Never;

    fn decide(&self, command: &Command) -> Result<Vec<CustomerEvent>, Never> {
        Ok(vec![match command {
            Command::Register { first, last } => CustomerEvent::Registered(Registered {
                first: first.clone(),
                last: last.clone(),
                tier: "gold".to_owned(),
            }),
            Command::Move(city) => CustomerEvent::Moved(Moved { city: city.clone() }),
        }])
    }

    fn apply(&mut self, event: &CustomerEvent) {
        match event {
            CustomerEvent::Registered(r) => {
                self.first = r.first.clone();
                self.last = r.last.clone();
                self.tier = r.tier.clone();
            }
            CustomerEvent::Moved(m) => self.city = Some(m.city.clone()),
        }
    }
}
