//! CreateAcls: validates each creation as Kafka does (INVALID_REQUEST with the reason) and
//! stores the valid ones through the metadata writer. SECURITY_DISABLED without an
//! authorizer. CLUSTER ALTER is checked before this runs (`access`).

use crate::security::acl::{AclBinding, RawAcl};
use crate::server::access::authorizer_enabled;
use crate::server::context::RequestContext;
use crate::shard::security_changes::create_acls;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::protocol::StrBytes;

fn failed(code: ResponseError, message: String) -> AclCreationResult {
    AclCreationResult::default()
        .with_error_code(code.code())
        .with_error_message(Some(StrBytes::from_string(message)))
}

pub async fn handle(ctx: &RequestContext<'_>, request: CreateAclsRequest) -> CreateAclsResponse {
    let response = CreateAclsResponse::default().with_throttle_time_ms(0);
    if !authorizer_enabled(ctx) {
        let results = request
            .creations
            .iter()
            .map(|_| {
                failed(
                    ResponseError::SecurityDisabled,
                    "No Authorizer is configured.".into(),
                )
            })
            .collect();
        return response.with_results(results);
    }
    let mut results = Vec::with_capacity(request.creations.len());
    let mut valid: Vec<(usize, AclBinding)> = Vec::new();
    for (i, creation) in request.creations.iter().enumerate() {
        let raw = RawAcl {
            resource_type: creation.resource_type,
            resource_name: &creation.resource_name,
            pattern_type: creation.resource_pattern_type,
            principal: &creation.principal,
            host: &creation.host,
            operation: creation.operation,
            permission: creation.permission_type,
        };
        match AclBinding::from_raw(raw) {
            Ok(binding) => {
                valid.push((i, binding));
                results.push(AclCreationResult::default().with_error_code(0));
            }
            Err(e) => results.push(failed(ResponseError::InvalidRequest, e.to_string())),
        }
    }
    if valid.is_empty() {
        return response.with_results(results);
    }
    let indexes: Vec<usize> = valid.iter().map(|(i, _)| *i).collect();
    let bindings = valid.into_iter().map(|(_, b)| b).collect();
    if let Err(e) = create_acls(ctx.shard, bindings).await {
        for i in indexes {
            results[i] = AclCreationResult::default()
                .with_error_code(e.code)
                .with_error_message(Some(StrBytes::from_string(e.message.clone())));
        }
    }
    response.with_results(results)
}
