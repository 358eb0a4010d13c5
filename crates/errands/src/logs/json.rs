//! [`JsonLines`]: one flat JSON object per log line, with the enclosing spans' fields and
//! errands' JSON-valued fields nested.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Fields errands records as JSON text (`tracing` records strings), nested again here.
const JSON_FIELDS: [&str; 1] = ["task.fields"];

/// A `tracing-subscriber` event format: each line is one JSON object with `timestamp`,
/// `level`, `target`, the fields of every enclosing span (outermost first, inner ones win),
/// then the event's own fields (`message` included). Unlike `fmt().json()`, the task's
/// explicit fields in errands' reports (`task.fields`) are a nested object, not a string, and
/// a handler's or task's lines carry `request_id` and `task.name` at the top level.
///
/// It needs the JSON field formatter for spans, as below.
///
/// ```
/// use tracing_subscriber::fmt::format::JsonFields;
///
/// let subscriber = tracing_subscriber::fmt()
///     .fmt_fields(JsonFields::new())
///     .event_format(errands::logs::JsonLines)
///     .finish();
/// # let _ = subscriber;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonLines;

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        let mut time = String::new();
        SystemTime.format_time(&mut Writer::new(&mut time))?;
        line.insert("timestamp".into(), time.into());
        let metadata = event.metadata();
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert("target".into(), metadata.target().into());
        for span in ctx.event_scope().into_iter().flat_map(|s| s.from_root()) {
            let extensions = span.extensions();
            let Some(fields) = extensions.get::<FormattedFields<JsonFields>>() else {
                continue;
            };
            if let Ok(Value::Object(fields)) = serde_json::from_str(fields) {
                line.extend(fields);
            }
        }
        event.record(&mut Fields(&mut line));
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Records an event's fields into the line.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        self.0.insert(field.name().to_owned(), value);
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let nested = JSON_FIELDS
            .contains(&field.name())
            .then(|| serde_json::from_str(value).ok())
            .flatten();
        self.put(field, nested.unwrap_or_else(|| value.into()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}
