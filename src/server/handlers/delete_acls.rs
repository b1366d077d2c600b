//! DeleteAcls: removes what each filter selects and answers, per filter, the ACLs it
//! removed. An unreadable filter is INVALID_REQUEST for that filter only, as in Kafka.
//! SECURITY_DISABLED without an authorizer; CLUSTER ALTER is checked before this runs.

use crate::security::acl::{AclBinding, AclFilter, RawAcl};
use crate::server::access::authorizer_enabled;
use crate::server::context::RequestContext;
use crate::shard::security_changes::delete_acls;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use kafka_protocol::protocol::StrBytes;

fn failed(code: i16, message: String) -> DeleteAclsFilterResult {
    DeleteAclsFilterResult::default()
        .with_error_code(code)
        .with_error_message(Some(StrBytes::from_string(message)))
}

fn read_filter(f: &DeleteAclsFilter) -> Result<AclFilter, String> {
    let raw = RawAcl {
        resource_type: f.resource_type_filter,
        resource_name: "",
        pattern_type: f.pattern_type_filter,
        principal: "",
        host: "",
        operation: f.operation,
        permission: f.permission_type,
    };
    AclFilter::from_raw(
        raw,
        f.resource_name_filter.as_deref(),
        f.principal_filter.as_deref(),
        f.host_filter.as_deref(),
    )
    .map_err(|e| e.to_string())
}

fn matching(b: AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_error_code(0)
        .with_resource_type(b.resource_type as i8)
        .with_resource_name(StrBytes::from_string(b.resource_name))
        .with_pattern_type(b.pattern_type as i8)
        .with_principal(StrBytes::from_string(b.principal))
        .with_host(StrBytes::from_string(b.host))
        .with_operation(b.operation as i8)
        .with_permission_type(b.permission as i8)
}

pub async fn handle(ctx: &RequestContext<'_>, request: DeleteAclsRequest) -> DeleteAclsResponse {
    let response = DeleteAclsResponse::default().with_throttle_time_ms(0);
    if !authorizer_enabled(ctx) {
        let disabled = ResponseError::SecurityDisabled.code();
        let results = request
            .filters
            .iter()
            .map(|_| failed(disabled, "No Authorizer is configured.".into()))
            .collect();
        return response.with_filter_results(results);
    }
    let read: Vec<Result<AclFilter, String>> = request.filters.iter().map(read_filter).collect();
    let valid: Vec<AclFilter> = read.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
    let mut removed = match delete_acls(ctx.shard, valid).await {
        Ok(removed) => removed.into_iter(),
        Err(e) => {
            let results = read.iter().map(|_| failed(e.code, e.message.clone())).collect();
            return response.with_filter_results(results);
        }
    };
    let results = read
        .into_iter()
        .map(|r| match r {
            Err(message) => failed(ResponseError::InvalidRequest.code(), message),
            Ok(_) => DeleteAclsFilterResult::default()
                .with_error_code(0)
                .with_matching_acls(removed.next().unwrap_or_default().into_iter().map(matching).collect()),
        })
        .collect();
    response.with_filter_results(results)
}
