//! [`Batch`]: the tasks of one request waiting for one of its moments.

use std::iter::Chain;
use std::option;
use std::vec;

use crate::exec::Pending;

/// The tasks of a request waiting for its `after_route` or its `after_response` moment, in the
/// order they were scheduled. The first is kept inline: most requests schedule at most one
/// such task, and then need no vector.
#[derive(Default)]
pub(super) struct Batch {
    first: Option<Box<dyn Pending>>,
    rest: Vec<Box<dyn Pending>>,
}

impl Batch {
    pub(super) fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    pub(super) fn push(&mut self, task: Box<dyn Pending>) {
        match self.first {
            None => self.first = Some(task),
            Some(_) => self.rest.push(task),
        }
    }
}

impl Extend<Box<dyn Pending>> for Batch {
    fn extend<I: IntoIterator<Item = Box<dyn Pending>>>(&mut self, tasks: I) {
        for task in tasks {
            self.push(task);
        }
    }
}

impl IntoIterator for Batch {
    type Item = Box<dyn Pending>;
    type IntoIter = Chain<option::IntoIter<Box<dyn Pending>>, vec::IntoIter<Box<dyn Pending>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}
