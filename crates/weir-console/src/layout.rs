//! The page shell every console page shares: head, navigation, the
//! embedded stylesheet and script, and small helpers for links whose
//! path segments carry user data (percent-encoded, then escaped by maud).

use maud::{DOCTYPE, Markup, html};

/// Which navigation entry is the current page's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Topics,
    Groups,
    Events,
    DeadLetters,
    Sagas,
    Alerts,
    None,
}

const ENTRIES: [(Nav, &str, &str); 7] = [
    (Nav::Overview, "/console", "Overview"),
    (Nav::Topics, "/console/topics", "Topics"),
    (Nav::Groups, "/console/groups", "Groups"),
    (Nav::Events, "/console/events", "Events"),
    (Nav::DeadLetters, "/console/dlq", "Dead letters"),
    (Nav::Sagas, "/console/sagas", "Sagas"),
    (Nav::Alerts, "/console/alerts", "Alerts"),
];

/// A whole page titled `title` with `body` under the navigation.
pub fn page(title: &str, current: Nav, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Weir console" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/console" { "weir" }
                    nav {
                        @for (nav, href, label) in ENTRIES {
                            a href=(href) class=[(nav == current).then_some("current")] { (label) }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// `s` percent-encoded for one path segment or query value (everything
/// but unreserved characters), so a name with `/`, `?` or `#` stays one
/// segment.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A "next page" link, or nothing when there is none.
pub fn next_link(href: Option<String>) -> Markup {
    html! {
        @if let Some(href) = href {
            p.pager { a href=(href) { "Next page →" } }
        }
    }
}

/// A table cell for a count, right-aligned.
pub fn num(n: impl std::fmt::Display) -> Markup {
    html! { td.num { (n) } }
}

#[cfg(test)]
mod tests {
    use super::enc;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(enc("orders-1.a_b~"), "orders-1.a_b~");
        assert_eq!(enc("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(enc("é"), "%C3%A9");
    }
}
