//! DescribeUserScramCredentials (KIP-554): each user's SCRAM mechanisms and iteration
//! counts (never salts or keys). No users named (null or empty) lists every user; a name
//! asked twice is DUPLICATE_RESOURCE, an unknown one RESOURCE_NOT_FOUND, as in Kafka.

use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let snapshot = ctx.shard.metadata.load_full();
    let credentials = &snapshot.scram_credentials;
    let described = |user: &str| {
        let result = DescribeUserScramCredentialsResult::default()
            .with_user(StrBytes::from_string(user.to_string()));
        match credentials.user(user) {
            Some(creds) => result.with_error_code(0).with_credential_infos(
                creds
                    .iter()
                    .map(|(m, c)| {
                        CredentialInfo::default()
                            .with_mechanism(m.code())
                            .with_iterations(c.iterations)
                    })
                    .collect(),
            ),
            None => result
                .with_error_code(ResponseError::ResourceNotFound.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "Attempt to describe a user credential that does not exist",
                ))),
        }
    };
    let results = match request.users.filter(|users| !users.is_empty()) {
        None => credentials.users().map(|(user, _)| described(user)).collect(),
        Some(users) => {
            let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
            let mut results: Vec<DescribeUserScramCredentialsResult> = Vec::new();
            for (i, name) in names.iter().enumerate() {
                if names[..i].contains(name) {
                    continue;
                }
                results.push(if names[i + 1..].contains(name) {
                    DescribeUserScramCredentialsResult::default()
                        .with_user(StrBytes::from_string(name.to_string()))
                        .with_error_code(ResponseError::DuplicateResource.code())
                        .with_error_message(Some(StrBytes::from_static_str(
                            "Cannot describe SCRAM credentials for the same user twice in a \
                             single request",
                        )))
                } else {
                    described(name)
                });
            }
            results
        }
    };
    DescribeUserScramCredentialsResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(0)
        .with_results(results)
}
