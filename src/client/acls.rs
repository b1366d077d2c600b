//! ACL administration (CreateAcls, DescribeAcls, DeleteAcls) on any Kafka-compatible
//! broker, for `sluice acl`. Speaks Kafka's wire codes; naming them is the CLI's job.

use super::cluster::Client;
use super::error::{ClientError, Result};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;

/// One ACL (or, for describe/remove, a filter: code 1 = ANY, `None` = any string), in
/// Kafka's wire codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclSpec {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

fn text(s: &Option<String>) -> Option<StrBytes> {
    s.as_ref().map(|s| StrBytes::from_string(s.clone()))
}

impl Client {
    /// Creates one ACL.
    pub fn create_acl(&mut self, acl: &AclSpec) -> Result<()> {
        let creation = AclCreation::default()
            .with_resource_type(acl.resource_type)
            .with_resource_name(text(&acl.resource_name).unwrap_or_default())
            .with_resource_pattern_type(acl.pattern_type)
            .with_principal(text(&acl.principal).unwrap_or_default())
            .with_host(text(&acl.host).unwrap_or_else(|| StrBytes::from_static_str("*")))
            .with_operation(acl.operation)
            .with_permission_type(acl.permission);
        let request = CreateAclsRequest::default().with_creations(vec![creation]);
        let response = self.admin_connection()?.call(&request)?;
        let result = response
            .results
            .first()
            .ok_or_else(|| ClientError::Invalid("CreateAcls answered no result".into()))?;
        match ClientError::from_code(
            result.error_code,
            "create ACL",
            result.error_message.as_deref(),
        ) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// The ACLs matching `filter`.
    pub fn describe_acls(&mut self, filter: &AclSpec) -> Result<Vec<AclSpec>> {
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(filter.resource_type)
            .with_resource_name_filter(text(&filter.resource_name))
            .with_pattern_type_filter(filter.pattern_type)
            .with_principal_filter(text(&filter.principal))
            .with_host_filter(text(&filter.host))
            .with_operation(filter.operation)
            .with_permission_type(filter.permission);
        let response = self.admin_connection()?.call(&request)?;
        if let Some(err) = ClientError::from_code(
            response.error_code,
            "describe ACLs",
            response.error_message.as_deref(),
        ) {
            return Err(err);
        }
        let mut acls = Vec::new();
        for resource in response.resources {
            for acl in resource.acls {
                acls.push(AclSpec {
                    resource_type: resource.resource_type,
                    resource_name: Some(resource.resource_name.to_string()),
                    pattern_type: resource.pattern_type,
                    principal: Some(acl.principal.to_string()),
                    host: Some(acl.host.to_string()),
                    operation: acl.operation,
                    permission: acl.permission_type,
                });
            }
        }
        Ok(acls)
    }

    /// Deletes the ACLs matching `filter`; how many were deleted.
    pub fn delete_acls(&mut self, filter: &AclSpec) -> Result<usize> {
        let request = DeleteAclsRequest::default().with_filters(vec![
            DeleteAclsFilter::default()
                .with_resource_type_filter(filter.resource_type)
                .with_resource_name_filter(text(&filter.resource_name))
                .with_pattern_type_filter(filter.pattern_type)
                .with_principal_filter(text(&filter.principal))
                .with_host_filter(text(&filter.host))
                .with_operation(filter.operation)
                .with_permission_type(filter.permission),
        ]);
        let response = self.admin_connection()?.call(&request)?;
        let result = response
            .filter_results
            .first()
            .ok_or_else(|| ClientError::Invalid("DeleteAcls answered no result".into()))?;
        if let Some(err) = ClientError::from_code(
            result.error_code,
            "delete ACLs",
            result.error_message.as_deref(),
        ) {
            return Err(err);
        }
        Ok(result.matching_acls.len())
    }
}
