//! AlterUserScramCredentials (KIP-554): upserts and deletes SCRAM credentials. The client
//! sends the salted password; only the salt, StoredKey, ServerKey and iterations are kept
//! (`metadata::credentials`). Kafka's checks and codes: a user/mechanism pair named twice is
//! DUPLICATE_RESOURCE, an unknown mechanism UNSUPPORTED_SASL_MECHANISM, an empty name or
//! iterations outside 4096..=16384 UNACCEPTABLE_CREDENTIAL, deleting a missing credential
//! RESOURCE_NOT_FOUND. One result per user, in the order first named.

use crate::metadata::credentials::{ScramChange, ScramRecordChange, USER_NAME_BYTES_MAX};
use crate::metadata::replicated::{Applied, MetadataRecord};
use crate::security::scram::{ITERATIONS_MAX, ITERATIONS_MIN, ScramCredential, ScramMechanism};
use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

/// Longest salt accepted (Kafka's clients send 64 bytes at most in practice).
const SALT_BYTES_MAX: usize = 1024;

/// A user's outcome so far: its valid changes, or the first error (code, message).
type Checked = Result<Vec<ScramChange>, (i16, String)>;

/// A change as the request named it, before validation.
struct Named {
    user: String,
    mechanism: i8,
    upsert: Option<(i32, Vec<u8>, Vec<u8>)>,
}

fn validate(change: &Named, all: &[Named]) -> Result<ScramChange, (i16, String)> {
    let unacceptable = |m: &str| (ResponseError::UnacceptableCredential.code(), m.to_string());
    let pairs = all
        .iter()
        .filter(|o| o.user == change.user && o.mechanism == change.mechanism)
        .count();
    if pairs > 1 {
        return Err((
            ResponseError::DuplicateResource.code(),
            "A user credential cannot be altered twice in the same request".into(),
        ));
    }
    if change.user.is_empty() {
        return Err(unacceptable("Username must not be empty"));
    }
    if change.user.len() > USER_NAME_BYTES_MAX {
        return Err(unacceptable("Username is too long"));
    }
    let mechanism = ScramMechanism::from_code(change.mechanism).ok_or((
        ResponseError::UnsupportedSaslMechanism.code(),
        "Unknown SCRAM mechanism".to_string(),
    ))?;
    let Some((iterations, salt, salted_password)) = &change.upsert else {
        return Ok(ScramChange::Delete(change.user.clone(), mechanism));
    };
    if *iterations < ITERATIONS_MIN {
        return Err(unacceptable("Too few iterations"));
    }
    if *iterations > ITERATIONS_MAX {
        return Err(unacceptable("Too many iterations"));
    }
    if salt.is_empty() || salt.len() > SALT_BYTES_MAX {
        return Err(unacceptable("Salt must be 1 to 1024 bytes"));
    }
    if salted_password.len() != mechanism.salted_password(b"", b"", 1).len() {
        return Err(unacceptable("Salted password has the wrong length"));
    }
    Ok(ScramChange::Upsert(
        change.user.clone(),
        mechanism,
        ScramCredential::from_salted_password(mechanism, salted_password, salt, *iterations),
    ))
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let mut named: Vec<Named> = request
        .deletions
        .iter()
        .map(|d| Named {
            user: d.name.to_string(),
            mechanism: d.mechanism,
            upsert: None,
        })
        .collect();
    named.extend(request.upsertions.iter().map(|u| Named {
        user: u.name.to_string(),
        mechanism: u.mechanism,
        upsert: Some((u.iterations, u.salt.to_vec(), u.salted_password.to_vec())),
    }));
    // Per user: the first error, else its valid changes.
    let mut users: Vec<(String, Checked)> = Vec::new();
    for change in &named {
        let checked = validate(change, &named);
        let index = match users.iter().position(|(u, _)| *u == change.user) {
            Some(index) => index,
            None => {
                users.push((change.user.clone(), Ok(Vec::new())));
                users.len() - 1
            }
        };
        let entry = &mut users[index].1;
        match (entry.as_mut(), checked) {
            (Ok(changes), Ok(c)) => changes.push(c),
            (Ok(_), Err(e)) => *entry = Err(e),
            (Err(_), _) => {}
        }
    }
    let results = apply(ctx, users).await;
    AlterUserScramCredentialsResponse::default()
        .with_throttle_time_ms(0)
        .with_results(results)
}

/// Sends every valid user's changes to the metadata writer in one call (one persisted
/// snapshot) and turns the outcome into results.
async fn apply(
    ctx: &RequestContext<'_>,
    users: Vec<(String, Checked)>,
) -> Vec<AlterUserScramCredentialsResult> {
    let mut changes = Vec::new();
    let mut owners = Vec::new();
    for (index, (_, checked)) in users.iter().enumerate() {
        if let Ok(list) = checked {
            changes.extend(list.iter().cloned());
            owners.extend(std::iter::repeat_n(index, list.len()));
        }
    }
    let outcome = if ctx.shard.cluster.is_some() {
        propose(ctx, &changes).await
    } else {
        on_the_writer(ctx, changes).await
    };    let mut errors: Vec<Option<(i16, String)>> = users
        .iter()
        .map(|(_, checked)| checked.as_ref().err().cloned())
        .collect();
    match outcome {
        Ok(per_change) => {
            for (owner, result) in owners.into_iter().zip(per_change) {
                if let (Err(message), None) = (result, &errors[owner]) {
                    errors[owner] = Some((ResponseError::ResourceNotFound.code(), message));
                }
            }
        }
        Err(e) => {
            for owner in owners {
                errors[owner].get_or_insert_with(|| e.clone());
            }
        }
    }
    users
        .into_iter()
        .zip(errors)
        .map(|((user, _), error)| {
            let result = AlterUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(user));
            match error {
                None => result.with_error_code(0),
                Some((code, message)) => result
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect()
}

/// Outcome of the changes, per change, or the error that refused them all.
type Outcome = Result<Vec<Result<(), String>>, (i16, String)>;

/// Single node: the metadata writer on shard 0 applies and persists the changes.
async fn on_the_writer(ctx: &RequestContext<'_>, changes: Vec<ScramChange>) -> Outcome {
    ctx.shard
        .invoke_on(0, move |s| async move {
            match s.metadata_writer.as_deref() {
                Some(writer) => writer
                    .alter_scram_credentials(changes)
                    .map_err(|e| (e.kafka_error_code(), e.to_string())),
                None => Err((
                    ResponseError::NotController.code(),
                    "metadata writer lives on shard 0".to_string(),
                )),
            }
        })
        .await
        .unwrap_or_else(|_| {
            Err((
                ResponseError::BrokerNotAvailable.code(),
                "shutting down".into(),
            ))
        })
}

/// Cluster mode: one record through the metadata quorum, so every broker authenticates
/// with the same credentials (an inter-broker SCRAM login needs them on every leader).
async fn propose(ctx: &RequestContext<'_>, changes: &[ScramChange]) -> Outcome {
    let record = MetadataRecord::AlterScramCredentials {
        changes: changes.iter().map(ScramRecordChange::from).collect(),
    };
    match crate::shard::cluster_topics::propose(ctx.shard, record).await {
        Ok(Applied::Credentials(outcome)) => Ok(outcome),
        Ok(_) => Err((
            ResponseError::UnknownServerError.code(),
            "the applied record answered something else".into(),
        )),
        Err(e) => Err((e.code, e.message)),
    }
}
