//! Command-line flags and environment variables, with defaults.

use std::net::SocketAddr;
use std::time::Duration;

pub const HELP: &str = "\
errands-demo: a small service showing errands' background tasks and shutdown

USAGE:
    errands-demo [OPTIONS]

OPTIONS (each also read from the environment variable shown):
    --addr <ADDR>                  address to listen on [ERRANDS_DEMO_ADDR] (default 127.0.0.1:3000)
    --drain-timeout-ms <MS>        how long shutdown waits for requests [ERRANDS_DEMO_DRAIN_TIMEOUT_MS] (default 10000)
    --shutdown-deadline-ms <MS>    how long shutdown waits for shielded tasks [ERRANDS_DEMO_SHUTDOWN_DEADLINE_MS] (default 20000)
    -h, --help                     print this help
";

#[derive(Debug)]
pub struct Config {
    pub addr: SocketAddr,
    pub drain_timeout: Duration,
    pub shutdown_deadline: Duration,
}

/// What the command line asks for.
pub enum Command {
    Run(Config),
    Help,
}

impl Command {
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Command, String> {
        let env = |name: &str| std::env::var(name).ok();
        let mut addr = env("ERRANDS_DEMO_ADDR").unwrap_or_else(|| "127.0.0.1:3000".into());
        let mut drain = env("ERRANDS_DEMO_DRAIN_TIMEOUT_MS").unwrap_or_else(|| "10000".into());
        let mut deadline =
            env("ERRANDS_DEMO_SHUTDOWN_DEADLINE_MS").unwrap_or_else(|| "20000".into());
        while let Some(flag) = args.next() {
            let slot = match flag.as_str() {
                "-h" | "--help" => return Ok(Command::Help),
                "--addr" => &mut addr,
                "--drain-timeout-ms" => &mut drain,
                "--shutdown-deadline-ms" => &mut deadline,
                other => return Err(format!("unknown option {other:?}; see --help")),
            };
            *slot = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        }
        Ok(Command::Run(Config {
            addr: addr
                .parse()
                .map_err(|e| format!("invalid address {addr:?}: {e}"))?,
            drain_timeout: millis(&drain, "drain timeout")?,
            shutdown_deadline: millis(&deadline, "shutdown deadline")?,
        }))
    }
}

fn millis(value: &str, what: &str) -> Result<Duration, String> {
    value
        .parse()
        .map(Duration::from_millis)
        .map_err(|_| format!("invalid {what} {value:?}: expected milliseconds"))
}
