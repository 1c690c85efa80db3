//! Typed events: a Rust type declares which CloudEvents types (name and
//! data version) it stands for, and how its data is encoded (JSON through
//! serde). [`events!`](crate::events) writes that declaration for an enum
//! of payload structs; [`event!`](crate::event) for one struct.

/// A CloudEvents `type` with the version of its data's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventType {
    pub name: &'static str,
    pub version: u32,
}

impl EventType {
    pub const fn new(name: &'static str, version: u32) -> Self {
        Self { name, version }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} v{}", self.name, self.version)
    }
}

/// A Rust type for one or more event types.
pub trait Event: Sized + Send + Sync + 'static {
    /// Every event type (name and version) this Rust type decodes.
    const TYPES: &'static [EventType];

    /// The event type of this value.
    fn event_type(&self) -> EventType;

    /// The event's data as JSON.
    fn encode(&self) -> Result<Vec<u8>, serde_json::Error>;

    /// The event of `event_type`, version `version`, from its data;
    /// `None` if this Rust type does not stand for that type and version.
    fn decode(
        event_type: &str,
        version: u32,
        data: &[u8],
    ) -> Option<Result<Self, serde_json::Error>>;

    /// Whether this Rust type stands for `event_type` at `version`.
    fn handles(event_type: &str, version: u32) -> bool {
        Self::TYPES
            .iter()
            .any(|t| t.name == event_type && t.version == version)
    }
}

/// Declares an enum of events, one variant per event type, each holding a
/// serde payload, and implements [`Event`] for it:
///
/// ```
/// #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// pub struct Opened { pub owner: String }
/// #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// pub struct Deposited { pub amount: u64 }
///
/// weir::events! {
///     #[derive(Debug, Clone)]
///     pub enum AccountEvent {
///         Opened(Opened) = "AccountOpened" v 1,
///         Deposited(Deposited) = "MoneyDeposited" v 1,
///     }
/// }
/// use weir::Event;
/// assert_eq!(AccountEvent::Deposited(Deposited { amount: 5 }).event_type().name, "MoneyDeposited");
/// assert!(AccountEvent::decode("MoneyDeposited", 2, b"{}").is_none()); // another version
/// ```
#[macro_export]
macro_rules! events {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($variant:ident($payload:ty) = $type_name:literal v $version:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($variant($payload)),+
        }

        impl $crate::Event for $name {
            const TYPES: &'static [$crate::EventType] =
                &[$($crate::EventType::new($type_name, $version)),+];

            fn event_type(&self) -> $crate::EventType {
                match self {
                    $(Self::$variant(_) => $crate::EventType::new($type_name, $version)),+
                }
            }

            fn encode(&self) -> ::std::result::Result<::std::vec::Vec<u8>, $crate::serde_json::Error> {
                match self {
                    $(Self::$variant(payload) => $crate::serde_json::to_vec(payload)),+
                }
            }

            fn decode(
                event_type: &str,
                version: u32,
                data: &[u8],
            ) -> ::std::option::Option<::std::result::Result<Self, $crate::serde_json::Error>> {
                $(
                    if event_type == $type_name && version == $version {
                        return ::std::option::Option::Some(
                            $crate::serde_json::from_slice::<$payload>(data).map(Self::$variant),
                        );
                    }
                )+
                ::std::option::Option::None
            }
        }
    };
}

/// Implements [`Event`] for one serde struct of one event type:
/// `weir::event!(PriceChanged = "PriceChanged" v 1);`
#[macro_export]
macro_rules! event {
    ($ty:ty = $type_name:literal v $version:literal) => {
        impl $crate::Event for $ty {
            const TYPES: &'static [$crate::EventType] =
                &[$crate::EventType::new($type_name, $version)];

            fn event_type(&self) -> $crate::EventType {
                $crate::EventType::new($type_name, $version)
            }

            fn encode(
                &self,
            ) -> ::std::result::Result<::std::vec::Vec<u8>, $crate::serde_json::Error> {
                $crate::serde_json::to_vec(self)
            }

            fn decode(
                event_type: &str,
                version: u32,
                data: &[u8],
            ) -> ::std::option::Option<::std::result::Result<Self, $crate::serde_json::Error>> {
                (event_type == $type_name && version == $version)
                    .then(|| $crate::serde_json::from_slice::<$ty>(data))
            }
        }
    };
}
