//! DescribeAcls: the stored ACLs a filter selects, grouped by resource pattern as Kafka
//! answers them. SECURITY_DISABLED without an authorizer; CLUSTER DESCRIBE is checked
//! before this runs (`access`).

use crate::security::acl::{AclBinding, AclFilter, RawAcl};
use crate::server::access::authorizer_enabled;
use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::protocol::StrBytes;

fn refused(code: ResponseError, message: String) -> DescribeAclsResponse {
    DescribeAclsResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(code.code())
        .with_error_message(Some(StrBytes::from_string(message)))
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeAclsRequest,
) -> DescribeAclsResponse {
    if !authorizer_enabled(ctx) {
        return refused(
            ResponseError::SecurityDisabled,
            "No Authorizer is configured.".into(),
        );
    }
    let raw = RawAcl {
        resource_type: request.resource_type_filter,
        resource_name: "",
        pattern_type: request.pattern_type_filter,
        principal: "",
        host: "",
        operation: request.operation,
        permission: request.permission_type,
    };
    let filter = match AclFilter::from_raw(
        raw,
        request.resource_name_filter.as_deref(),
        request.principal_filter.as_deref(),
        request.host_filter.as_deref(),
    ) {
        Ok(filter) => filter,
        Err(e) => return refused(ResponseError::InvalidRequest, e.to_string()),
    };
    let snapshot = ctx.shard.metadata.load_full();
    let matching = snapshot.acls.bindings().iter().filter(|b| filter.matches(b));
    DescribeAclsResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(0)
        .with_resources(group_by_resource(matching))
}

/// Bindings (sorted by resource pattern first) as one entry per resource pattern.
fn group_by_resource<'a>(bindings: impl Iterator<Item = &'a AclBinding>) -> Vec<DescribeAclsResource> {
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for b in bindings {
        let description = AclDescription::default()
            .with_principal(StrBytes::from_string(b.principal.clone()))
            .with_host(StrBytes::from_string(b.host.clone()))
            .with_operation(b.operation as i8)
            .with_permission_type(b.permission as i8);
        let same_resource = resources.last().is_some_and(|r| {
            r.resource_type == b.resource_type as i8
                && r.pattern_type == b.pattern_type as i8
                && r.resource_name.as_str() == b.resource_name
        });
        match resources.last_mut() {
            Some(last) if same_resource => last.acls.push(description),
            _ => resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(b.resource_type as i8)
                    .with_resource_name(StrBytes::from_string(b.resource_name.clone()))
                    .with_pattern_type(b.pattern_type as i8)
                    .with_acls(vec![description]),
            ),
        }
    }
    resources
}
