//! `sluice user create|delete|list`: SCRAM users (like kafka-configs --alter --entity-type
//! users --add-config SCRAM-SHA-512=[...]) through DescribeUserScramCredentials and
//! AlterUserScramCredentials (KIP-554), so it works against any Kafka-compatible broker.
//!
//! The password is salted and hashed here: only the salted password crosses the wire, and
//! the broker keeps the derived keys. Must not: take a password on the command line (it
//! would show in `ps`): it is read from stdin.

use super::DEFAULT_BOOTSTRAP_SERVER;
use crate::client::Client;
use crate::security::scram::{ITERATIONS_MAX, ITERATIONS_MIN, ScramMechanism};
use clap::{Args, Subcommand};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

/// Bytes of random salt per credential (Kafka's tools use 32 or more).
const SALT_BYTES: usize = 32;
/// Longest password line read from stdin.
const PASSWORD_BYTES_MAX: usize = 1024;

#[derive(Debug, Args)]
pub struct UserArgs {
    /// Broker to bootstrap from, HOST:PORT[,HOST:PORT...].
    #[arg(long, global = true, default_value = DEFAULT_BOOTSTRAP_SERVER)]
    pub bootstrap_server: String,
    #[command(flatten)]
    pub security: super::security::SecurityArgs,
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user, or set its password (read from the first line of stdin).
    Create {
        name: String,
        /// SCRAM-SHA-256, SCRAM-SHA-512, or both when not given.
        #[arg(long)]
        mechanism: Option<String>,
        #[arg(long, default_value_t = ITERATIONS_MIN)]
        iterations: i32,
    },
    /// Delete a user's credentials (one mechanism, or all of them).
    Delete {
        name: String,
        #[arg(long)]
        mechanism: Option<String>,
    },
    /// List users with their SCRAM mechanisms and iteration counts.
    List,
}

fn mechanisms(choice: Option<&str>) -> Result<Vec<ScramMechanism>, String> {
    match choice {
        None => Ok(ScramMechanism::ALL.to_vec()),
        Some(name) => ScramMechanism::from_name(name)
            .map(|m| vec![m])
            .ok_or_else(|| format!("unknown mechanism {name:?}: SCRAM-SHA-256 or SCRAM-SHA-512")),
    }
}

fn read_password() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() || password.len() > PASSWORD_BYTES_MAX {
        return Err(format!(
            "the password (first line of stdin) must be 1 to {PASSWORD_BYTES_MAX} bytes"
        ));
    }
    Ok(password)
}

pub fn run(args: UserArgs) -> Result<(), String> {
    let mut client =
        Client::connect_with(&args.bootstrap_server, args.security.connection_config()?)
            .map_err(|e| e.to_string())?;
    match args.command {
        UserCommand::Create {
            name,
            mechanism,
            iterations,
        } => {
            if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations) {
                return Err(format!(
                    "--iterations must be {ITERATIONS_MIN}..={ITERATIONS_MAX}"
                ));
            }
            let password = read_password()?;
            let upsertions = mechanisms(mechanism.as_deref())?
                .into_iter()
                .map(|m| {
                    let mut salt = [0u8; SALT_BYTES];
                    rand::fill(&mut salt[..]);
                    let salted = m.salted_password(password.as_bytes(), &salt, iterations as u32);
                    ScramCredentialUpsertion::default()
                        .with_name(StrBytes::from_string(name.clone()))
                        .with_mechanism(m.code())
                        .with_iterations(iterations)
                        .with_salt(salt.to_vec().into())
                        .with_salted_password(salted.into())
                })
                .collect();
            alter(
                &mut client,
                AlterUserScramCredentialsRequest::default().with_upsertions(upsertions),
            )?;
            println!("created user {name}");
        }
        UserCommand::Delete { name, mechanism } => {
            let wanted = match mechanism.as_deref() {
                Some(m) => mechanisms(Some(m))?,
                // Every mechanism the user has (deleting a missing one is an error).
                None => describe(&mut client, Some(&name))?
                    .into_iter()
                    .filter_map(|(_, m, _)| ScramMechanism::from_code(m))
                    .collect(),
            };
            let deletions = wanted
                .into_iter()
                .map(|m| {
                    ScramCredentialDeletion::default()
                        .with_name(StrBytes::from_string(name.clone()))
                        .with_mechanism(m.code())
                })
                .collect();
            alter(
                &mut client,
                AlterUserScramCredentialsRequest::default().with_deletions(deletions),
            )?;
            println!("deleted user {name}");
        }
        UserCommand::List => {
            for (user, mechanism, iterations) in describe(&mut client, None)? {
                let name = ScramMechanism::from_code(mechanism).map_or("unknown", |m| m.name());
                println!("{user}\t{name}\titerations={iterations}");
            }
        }
    }
    Ok(())
}

fn alter(client: &mut Client, request: AlterUserScramCredentialsRequest) -> Result<(), String> {
    let response: AlterUserScramCredentialsResponse = client
        .any_connection()
        .and_then(|c| c.call(&request))
        .map_err(|e| e.to_string())?;
    for result in response.results {
        if result.error_code != 0 {
            return Err(format!(
                "user {}: error {} ({})",
                result.user,
                result.error_code,
                result.error_message.as_deref().unwrap_or("no message")
            ));
        }
    }
    Ok(())
}

/// (user, mechanism code, iterations) of every user, or of `user` only.
fn describe(client: &mut Client, user: Option<&str>) -> Result<Vec<(String, i8, i32)>, String> {
    let request = DescribeUserScramCredentialsRequest::default().with_users(
        user.map(|u| vec![UserName::default().with_name(StrBytes::from_string(u.to_string()))]),
    );
    let response: DescribeUserScramCredentialsResponse = client
        .any_connection()
        .and_then(|c| c.call(&request))
        .map_err(|e| e.to_string())?;
    if response.error_code != 0 {
        return Err(format!("describe users: error {}", response.error_code));
    }
    let mut rows = Vec::new();
    for result in response.results {
        if result.error_code != 0 {
            return Err(format!(
                "user {}: error {} ({})",
                result.user,
                result.error_code,
                result.error_message.as_deref().unwrap_or("no message")
            ));
        }
        for info in result.credential_infos {
            rows.push((result.user.to_string(), info.mechanism, info.iterations));
        }
    }
    Ok(rows)
}
