//! The default task name, derived from the type of the scheduled future.

use std::borrow::Cow;

/// Derives a readable name from a future's type name.
///
/// An `async fn send_email(..)` produces a future named `path::send_email::{{closure}}`, which
/// becomes `send_email`. An `async` block written inside `fn signup` is named
/// `signup::{async block}`. Any other future is named after its type (`Ready`, `Map`, …).
/// Type names are best effort: set [`TaskBuilder::name`](crate::TaskBuilder::name) for names
/// that dashboards rely on.
pub(crate) fn derive(type_name: &'static str) -> Cow<'static, str> {
    let path = type_name.split('<').next().unwrap_or(type_name);
    let mut closures = 0;
    let mut base = path;
    for segment in path.rsplit("::") {
        if segment == "{{closure}}" {
            closures += 1;
        } else {
            base = segment;
            break;
        }
    }
    match closures {
        0 | 1 => Cow::Borrowed(base),
        _ => Cow::Owned(format!("{base}::{{async block}}")),
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
            "signup::{async block}"
        );
        assert_eq!(derive("futures_util::future::ready::Ready<()>"), "Ready");
        assert_eq!(derive("plain"), "plain");
    }
}
