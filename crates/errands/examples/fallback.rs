//! A fallback action that reuses the task's original inputs: the `on_error` handler owns a
//! copy of them and sends through the second mail path.
//!
//! Run: `cargo run -p errands --example fallback`

use errands::{Errands, TaskError, TaskInfo};

#[derive(Clone, Debug)]
struct Email {
    to: String,
    subject: String,
}

async fn send_primary(_email: Email) -> Result<(), std::io::Error> {
    Err(std::io::Error::other(
        "primary provider rejected the message",
    ))
}

async fn send_secondary(email: Email) -> Result<(), std::io::Error> {
    println!(
        "sent {:?} to {} through the secondary provider",
        email.subject, email.to
    );
    Ok(())
}

#[tokio::main]
async fn main() {
    let errands = Errands::new();
    let email = Email {
        to: "ada@example.com".into(),
        subject: "Welcome".into(),
    };
    let original = email.clone();
    errands
        .tasks()
        .after_response()
        .name("welcome_email")
        .on_error(move |info: TaskInfo, error: TaskError| {
            let email = original.clone();
            async move {
                println!("{} failed ({error}); falling back", info.name());
                send_secondary(email).await
            }
        })
        .schedule(send_primary(email))
        .expect("scheduled");
    errands.idle().await;
}
