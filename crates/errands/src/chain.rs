//! Walking an error's `source()` chain — bounded, since a chain may be long or even loop —
//! and bounding the texts that reports copy out of errors.
//!
//! The walk sees through the wrappers that hide an error's type: `anyhow::Error` (with the
//! `anyhow` feature) and the types registered with [`ErrandsBuilder::transparent`](crate::ErrandsBuilder::transparent) (such as an enum
//! with thiserror `#[error(transparent)]` variants). Type matching — mappers, `retry_on`,
//! the error handler registry, `find` — all walk here.

use std::error::Error as StdError;
#[cfg(feature = "anyhow")]
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

/// How many errors of a chain are looked at.
pub(crate) const MAX_DEPTH: usize = 32;

/// Longest error or panic message a report keeps, in bytes.
pub(crate) const MAX_MESSAGE: usize = 4096;

/// `error` and its sources, outermost first, at most [`MAX_DEPTH`], seen through wrappers.
///
/// A registered transparent error is yielded itself, then the error it stands for (whose
/// sources follow, as a transparent error's `source()` skips that error).
pub(crate) fn walk<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(open_link(error)), |&e| {
        hidden(e).or_else(|| e.source()).map(open_link)
    })
    .take(MAX_DEPTH)
}

/// The first error of type `E` along the chain.
pub(crate) fn find<'a, E: StdError + 'static>(
    error: &'a (dyn StdError + 'static),
) -> Option<&'a E> {
    walk(error).find_map(|e| e.downcast_ref::<E>())
}

/// `text` cut to at most `max` bytes (on a character boundary), marked with `…` when cut.
pub(crate) fn bounded(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// A boxed error (the task layer's `BoxError`).
type Boxed = Box<dyn StdError + Send + Sync + 'static>;

/// An `anyhow::Error`, boxed so that the walk can reach the error it holds (anyhow's own
/// boxed form hides that error's type).
#[cfg(feature = "anyhow")]
pub(crate) struct Anyhow(pub(crate) anyhow::Error);

#[cfg(feature = "anyhow")]
impl fmt::Debug for Anyhow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(feature = "anyhow")]
impl fmt::Display for Anyhow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(feature = "anyhow")]
impl StdError for Anyhow {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}

/// Boxes a task's or handler's error, keeping what the walk needs to see through it.
pub(crate) fn boxed<E: Into<Boxed> + 'static>(error: E) -> Boxed {
    #[cfg(feature = "anyhow")]
    let error = match take::<E, anyhow::Error>(error) {
        Ok(anyhow) => return Box::new(Anyhow(anyhow)),
        Err(other) => other,
    };
    #[cfg(not(feature = "anyhow"))]
    if std::any::type_name::<E>() == "anyhow::Error" {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            tracing::warn!(
                target: "errands",
                "an anyhow::Error reached errands without its `anyhow` feature: type matching \
                 (mappers, retry_on, error handlers) cannot see the error it holds"
            );
        });
    }
    error.into()
}

/// `value` as a `T`, when `E` is `T`.
#[cfg(feature = "anyhow")]
fn take<E: 'static, T: 'static>(value: E) -> Result<T, E> {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<T>>() {
        Some(taken) => Ok(taken.take().expect("the slot was just filled")),
        None => Err(slot.expect("the slot is untouched")),
    }
}

/// The error a private wrapper stands for, at any depth; anything else as it is.
pub(crate) fn open<'a>(
    error: &'a (dyn StdError + Send + Sync + 'static),
) -> &'a (dyn StdError + Send + Sync + 'static) {
    #[cfg(feature = "anyhow")]
    if let Some(Anyhow(inner)) = error.downcast_ref() {
        return open(&**inner);
    }
    error
}

fn open_link<'a>(error: &'a (dyn StdError + 'static)) -> &'a (dyn StdError + 'static) {
    #[cfg(feature = "anyhow")]
    if let Some(Anyhow(inner)) = error.downcast_ref() {
        return open(&**inner);
    }
    error
}

type Unwrap = Box<
    dyn for<'a> Fn(&'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)>
        + Send
        + Sync,
>;

/// The registered transparent types, one entry per type (the latest declaration wins);
/// process-wide, as a type's shape is.
static TRANSPARENT: RwLock<Vec<(std::any::TypeId, Unwrap)>> = RwLock::new(Vec::new());
static ANY_TRANSPARENT: AtomicBool = AtomicBool::new(false);

/// Registers `E` as standing for the error `inner` returns.
pub(crate) fn register<E: StdError + 'static>(inner: fn(&E) -> Option<&(dyn StdError + 'static)>) {
    let unwrap: Unwrap = Box::new(move |error| error.downcast_ref::<E>().and_then(inner));
    let id = std::any::TypeId::of::<E>();
    let mut registered = TRANSPARENT.write().unwrap_or_else(PoisonError::into_inner);
    registered.retain(|(registered, _)| *registered != id);
    registered.push((id, unwrap));
    ANY_TRANSPARENT.store(true, Ordering::Release);
}

/// The error a registered transparent error stands for.
fn hidden<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    if !ANY_TRANSPARENT.load(Ordering::Acquire) {
        return None;
    }
    let registered = TRANSPARENT.read().unwrap_or_else(PoisonError::into_inner);
    registered.iter().find_map(|(_, unwrap)| unwrap(error))
}

/// Longest string kept in echoed JSON (error details, task fields), in bytes.
pub(crate) const MAX_ECHO_STRING: usize = 256;

/// Most items of an array, or entries of an object, kept in echoed JSON.
pub(crate) const MAX_ECHO_ITEMS: usize = 100;

/// Deepest nesting kept in echoed JSON; deeper values become `null`.
pub(crate) const MAX_ECHO_DEPTH: usize = 16;

/// `value` bounded for echoing, as client input may be part of it: strings cut to
/// [`MAX_ECHO_STRING`] bytes (marked `…`), arrays and objects to [`MAX_ECHO_ITEMS`] entries,
/// nesting to [`MAX_ECHO_DEPTH`].
pub(crate) fn bounded_json(value: serde_json::Value) -> serde_json::Value {
    fn bound(value: serde_json::Value, depth: usize) -> serde_json::Value {
        use serde_json::Value;
        if depth > MAX_ECHO_DEPTH {
            return Value::Null;
        }
        match value {
            Value::String(s) => Value::String(bounded(s, MAX_ECHO_STRING)),
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .take(MAX_ECHO_ITEMS)
                    .map(|v| bound(v, depth + 1))
                    .collect(),
            ),
            Value::Object(entries) => Value::Object(
                entries
                    .into_iter()
                    .take(MAX_ECHO_ITEMS)
                    .map(|(k, v)| (bounded(k, MAX_ECHO_STRING), bound(v, depth + 1)))
                    .collect(),
            ),
            other => other,
        }
    }
    bound(value, 0)
}

/// The chain of `error` as one line: `outer: inner: root`, each text once (see [`texts`]).
#[cfg_attr(not(feature = "durable"), allow(dead_code))]
pub(crate) fn line(error: &(dyn StdError + 'static)) -> String {
    let messages: Vec<String> = walk(error).map(|e| e.to_string()).collect();
    texts(messages.iter().map(String::as_str))
}

/// Display texts of a chain, without those the text before them ends with (an error whose
/// `Display` is `"{context}: {source}"`, as many are, would otherwise print it twice).
pub(crate) fn texts<'a>(messages: impl IntoIterator<Item = &'a str>) -> String {
    let mut text = String::new();
    let mut previous = "";
    for message in messages {
        if !previous.is_empty() && previous.ends_with(message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(message);
        previous = message;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::{MAX_ECHO_ITEMS, MAX_ECHO_STRING, bounded_json, texts};

    #[test]
    fn echoed_json_is_bounded_in_length_width_and_depth() {
        let long = "x".repeat(1_900_000);
        let bounded = bounded_json(serde_json::json!({"sku": long, "list": vec![1; 10_000]}));
        let sku = bounded["sku"].as_str().unwrap();
        assert!(sku.len() <= MAX_ECHO_STRING + 3 && sku.ends_with('…'));
        assert_eq!(bounded["list"].as_array().unwrap().len(), MAX_ECHO_ITEMS);
        let mut deep = serde_json::json!(1);
        for _ in 0..100 {
            deep = serde_json::json!([deep]);
        }
        assert!(bounded_json(deep).to_string().len() < 100);
    }

    #[test]
    fn a_source_already_in_its_wrappers_text_is_printed_once() {
        let chain = [
            "error returned from database: UNIQUE constraint failed: users.email",
            "UNIQUE constraint failed: users.email",
        ];
        assert_eq!(
            texts(chain),
            "error returned from database: UNIQUE constraint failed: users.email"
        );
        assert_eq!(
            texts(["saving user", "disk full"]),
            "saving user: disk full"
        );
        assert_eq!(texts(["a", "", "b"]), "a: b");
    }
}
