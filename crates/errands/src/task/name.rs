//! Task names: given with [`TaskBuilder::name`](crate::TaskBuilder::name), or derived from the
//! type of the scheduled future and, for an `async` block or closure, where it was scheduled.

use std::borrow::Cow;
use std::panic::Location;
use std::sync::OnceLock;

/// A task's name. A default name is kept as the future's type name and the place it was
/// scheduled, and derived only when it is read (in reports and logs), so scheduling a task
/// never parses a type name.
pub(crate) enum TaskName {
    Given(Cow<'static, str>),
    /// The type name of the scheduled future (or closure), to derive the name from.
    Derived {
        type_name: &'static str,
        at: &'static Location<'static>,
        /// The derived name, when it needs the place and so its own text.
        placed: OnceLock<String>,
    },
}

impl TaskName {
    pub(crate) fn derived(type_name: &'static str, at: &'static Location<'static>) -> Self {
        TaskName::Derived {
            type_name,
            at,
            placed: OnceLock::new(),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            TaskName::Given(name) => name,
            TaskName::Derived {
                type_name,
                at,
                placed,
            } => {
                let name = derive(type_name);
                if !name.ends_with("{{closure}}") {
                    return name;
                }
                // Two blocks of one handler share a type name: the place tells them apart.
                placed.get_or_init(|| format!("{name}@{}:{}", at.file(), at.line()))
            }
        }
    }
}

/// Derives a readable name from a future's type name, as a slice of it (no allocation).
///
/// An `async fn send_email(..)` produces a future named `path::send_email::{{closure}}`, which
/// becomes `send_email`. An `async` block written inside `async fn signup` is named
/// `signup::{{closure}}`, and gets the place it was scheduled: `signup::{{closure}}@src/
/// routes.rs:42`. Any other future is named after its type (`Ready`, `Map`, …). Type
/// names are best effort: set [`TaskBuilder::name`](crate::TaskBuilder::name) for names that
/// dashboards rely on.
pub(crate) fn derive(type_name: &'static str) -> &'static str {
    const CLOSURE: &str = "{{closure}}";
    let path = type_name.split('<').next().unwrap_or(type_name);
    // An async fn's future is its own closure: drop that one.
    let path = path.strip_suffix("::{{closure}}").unwrap_or(path);
    // Walk back over the remaining closures to the function they are written in.
    let mut end = path.len();
    loop {
        let start = path[..end].rfind(':').map_or(0, |colon| colon + 1);
        if &path[start..end] != CLOSURE || start < 2 {
            return &path[start..];
        }
        end = start - 2;
    }
}

#[cfg(test)]
mod tests {
    use super::derive;

    #[test]
    fn names() {
        assert_eq!(derive("demo::mail::send_email::{{closure}}"), "send_email");
        assert_eq!(
            derive("demo::signup::{{closure}}::{{closure}}"),
            "signup::{{closure}}"
        );
        assert_eq!(
            derive("demo::main::{{closure}}::{{closure}}::{{closure}}"),
            "main::{{closure}}::{{closure}}"
        );
        assert_eq!(derive("futures_util::future::ready::Ready<()>"), "Ready");
        assert_eq!(derive("plain"), "plain");
        assert_eq!(derive("{{closure}}::{{closure}}"), "{{closure}}");
    }
}
