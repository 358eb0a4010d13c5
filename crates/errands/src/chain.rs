//! Walking an error's `source()` chain — bounded, since a chain may be long or even loop —
//! and bounding the texts that reports copy out of errors.

use std::error::Error as StdError;

/// How many errors of a chain are looked at.
pub(crate) const MAX_DEPTH: usize = 32;

/// Longest error or panic message a report keeps, in bytes.
pub(crate) const MAX_MESSAGE: usize = 4096;

/// `error` and its sources, outermost first, at most [`MAX_DEPTH`].
pub(crate) fn walk<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |&e| e.source()).take(MAX_DEPTH)
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
