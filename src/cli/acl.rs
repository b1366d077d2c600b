//! `sluice acl add|list|remove`: manage ACLs through the wire (CreateAcls, DescribeAcls,
//! DeleteAcls) on any Kafka-compatible broker with an authorizer, like kafka-acls.sh.

use super::DEFAULT_BOOTSTRAP_SERVER;
use crate::client::Client;
use crate::client::acls::AclSpec;
use crate::security::acl::{AclOperation, PatternType, Permission, ResourceType};
use clap::{Args, Subcommand, ValueEnum};

/// Kafka's filter code for "any".
const ANY: i8 = 1;

#[derive(Debug, Args)]
pub struct AclArgs {
    /// Broker to bootstrap from, HOST:PORT[,HOST:PORT...].
    #[arg(long, global = true, default_value = DEFAULT_BOOTSTRAP_SERVER)]
    pub bootstrap_server: String,
    #[command(flatten)]
    pub security: super::security::SecurityArgs,
    #[command(subcommand)]
    pub command: AclCommand,
}

#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Allow (or with --deny, deny) a principal an operation on a resource.
    Add {
        #[command(flatten)]
        resource: ResourceArgs,
        /// `User:name`, or `User:*` for everyone.
        #[arg(long)]
        principal: String,
        #[arg(long, value_enum)]
        operation: Operation,
        /// An IP address the principal connects from, or `*`.
        #[arg(long, default_value = "*")]
        host: String,
        #[arg(long)]
        deny: bool,
    },
    /// List ACLs, all of them or those of one resource and/or principal.
    List {
        #[command(flatten)]
        resource: ResourceArgs,
        #[arg(long)]
        principal: Option<String>,
    },
    /// Remove the ACLs of a resource and/or principal (and operation).
    Remove {
        #[command(flatten)]
        resource: ResourceArgs,
        #[arg(long)]
        principal: Option<String>,
        #[arg(long, value_enum)]
        operation: Option<Operation>,
    },
}

#[derive(Debug, Args)]
pub struct ResourceArgs {
    #[arg(long, group = "resource")]
    pub topic: Option<String>,
    #[arg(long, group = "resource")]
    pub group: Option<String>,
    #[arg(long, group = "resource")]
    pub transactional_id: Option<String>,
    /// The cluster itself (`kafka-cluster`).
    #[arg(long, group = "resource")]
    pub cluster: bool,
    /// The name is a prefix: the ACL covers every resource whose name starts with it.
    #[arg(long)]
    pub prefixed: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

impl Operation {
    fn code(self) -> i8 {
        use AclOperation as O;
        (match self {
            Operation::All => O::All,
            Operation::Read => O::Read,
            Operation::Write => O::Write,
            Operation::Create => O::Create,
            Operation::Delete => O::Delete,
            Operation::Alter => O::Alter,
            Operation::Describe => O::Describe,
            Operation::ClusterAction => O::ClusterAction,
            Operation::DescribeConfigs => O::DescribeConfigs,
            Operation::AlterConfigs => O::AlterConfigs,
            Operation::IdempotentWrite => O::IdempotentWrite,
        }) as i8
    }
}

impl ResourceArgs {
    /// (resource type code, name, pattern type code); ANY when no resource is named.
    fn codes(&self) -> (i8, Option<String>, i8) {
        let pattern = if self.prefixed {
            PatternType::Prefixed as i8
        } else {
            PatternType::Literal as i8
        };
        let named = |t: ResourceType, name: &Option<String>| (t as i8, name.clone(), pattern);
        if self.topic.is_some() {
            named(ResourceType::Topic, &self.topic)
        } else if self.group.is_some() {
            named(ResourceType::Group, &self.group)
        } else if self.transactional_id.is_some() {
            named(ResourceType::TransactionalId, &self.transactional_id)
        } else if self.cluster {
            named(ResourceType::Cluster, &Some("kafka-cluster".to_string()))
        } else {
            (ANY, None, ANY)
        }
    }
}

fn describe(acl: &AclSpec) -> String {
    let resource =
        ResourceType::from_code(acl.resource_type).map_or("?".into(), |t| format!("{t:?}"));
    let pattern = PatternType::from_code(acl.pattern_type).map_or("?".into(), |p| format!("{p:?}"));
    let operation = AclOperation::from_code(acl.operation).map_or("?".into(), |o| format!("{o:?}"));
    let permission = Permission::from_code(acl.permission).map_or("?".into(), |p| format!("{p:?}"));
    format!(
        "{:<16} {:<30} {:<9} {:<24} {:<16} {:<16} {}",
        resource,
        acl.resource_name.as_deref().unwrap_or(""),
        pattern,
        acl.principal.as_deref().unwrap_or(""),
        acl.host.as_deref().unwrap_or(""),
        operation,
        permission
    )
}

pub fn run(args: AclArgs) -> Result<(), String> {
    let mut client =
        Client::connect_with(&args.bootstrap_server, args.security.connection_config()?)
            .map_err(|e| e.to_string())?;
    match args.command {
        AclCommand::Add {
            resource,
            principal,
            operation,
            host,
            deny,
        } => {
            let (resource_type, resource_name, pattern_type) = resource.codes();
            if resource_type == ANY {
                return Err(
                    "name a resource: --topic, --group, --transactional-id or --cluster".into(),
                );
            }
            let permission = if deny {
                Permission::Deny
            } else {
                Permission::Allow
            };
            let acl = AclSpec {
                resource_type,
                resource_name,
                pattern_type,
                principal: Some(principal),
                host: Some(host),
                operation: operation.code(),
                permission: permission as i8,
            };
            client.create_acl(&acl).map_err(|e| e.to_string())?;
            println!("added: {}", describe(&acl));
        }
        AclCommand::List {
            resource,
            principal,
        } => {
            let (resource_type, resource_name, pattern_type) = resource.codes();
            let filter = AclSpec {
                resource_type,
                resource_name,
                pattern_type,
                principal,
                host: None,
                operation: ANY,
                permission: ANY,
            };
            let acls = client.describe_acls(&filter).map_err(|e| e.to_string())?;
            println!(
                "{:<16} {:<30} {:<9} {:<24} {:<16} {:<16} PERMISSION",
                "RESOURCE_TYPE", "NAME", "PATTERN", "PRINCIPAL", "HOST", "OPERATION"
            );
            for acl in &acls {
                println!("{}", describe(acl));
            }
        }
        AclCommand::Remove {
            resource,
            principal,
            operation,
        } => {
            let (resource_type, resource_name, pattern_type) = resource.codes();
            if resource_type == ANY && principal.is_none() {
                return Err("name a resource or --principal (refusing to remove every ACL)".into());
            }
            let filter = AclSpec {
                resource_type,
                resource_name,
                pattern_type,
                principal,
                host: None,
                operation: operation.map_or(ANY, Operation::code),
                permission: ANY,
            };
            let removed = client.delete_acls(&filter).map_err(|e| e.to_string())?;
            println!("removed {removed} ACL(s)");
        }
    }
    Ok(())
}
