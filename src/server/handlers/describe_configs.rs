//! DescribeConfigs: every Kafka topic config of a topic (override, broker setting or
//! default, with synonyms and documentation when asked) and the broker's own settings.

use crate::config::topic_config_spec::{TOPIC_CONFIG_SPECS, TopicConfigSpec, documentation};
use crate::metadata::TopicMeta;
use crate::config::LogConfig;
use crate::metadata::dynamic_broker::{
    DynamicBrokerConfigs, dynamic_keys, is_unit_synonym, topic_config_of,
};
use crate::server::config_sources::{
    Level, SOURCE_DEFAULT, SOURCE_DYNAMIC_BROKER, SOURCE_GROUP,
    SOURCE_STATIC_BROKER, SOURCE_TOPIC, broker_levels, topic_config_source,
};
use crate::server::broker_configs::{broker_config_type, broker_entries};
use crate::config::group_config::{
    GROUP_CONFIG_KEYS, group_config_value, is_boolean_group_config, is_string_group_config,
};
use crate::config::topic_config_spec::{TYPE_BOOLEAN, TYPE_INT, TYPE_STRING};
use crate::group::consumer::DEFAULT_TIMEOUTS;
use crate::server::config_resources::{
    RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC, config_refusal,
};
use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

/// What the request asked to see besides names and values.
#[derive(Clone, Copy)]
struct Detail {
    version: i16,
    synonyms: bool,
    documentation: bool,
}

fn synonym(name: &str, value: &str, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(Some(StrBytes::from_string(value.to_string())))
        .with_source(source)
}

fn entry(
    detail: Detail,
    name: &str,
    value: String,
    source: i8,
    config_type: i8,
    doc: impl FnOnce() -> String,
) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(Some(StrBytes::from_string(value)))
        .with_read_only(false)
        .with_config_source(source)
        .with_is_sensitive(false)
        .with_documentation(None);
    if detail.version >= 3 {
        e = e.with_config_type(config_type);
        if detail.documentation {
            e = e.with_documentation(Some(StrBytes::from_string(doc())));
        }
    }
    e
}

fn synonyms_of(levels: &[Level]) -> Vec<DescribeConfigsSynonym> {
    levels.iter().map(|(n, v, s)| synonym(n, v, *s)).collect()
}

/// One topic config as Kafka shows it: the override, else the broker's setting (under its
/// synonym), else the default; synonyms list them in that order of precedence.
fn topic_entry(
    detail: Detail,
    topic: &TopicMeta,
    broker: &[Level],
    spec: &TopicConfigSpec,
) -> Option<DescribeConfigsResourceResult> {
    let value = topic.config.get(spec.name)?;
    let overridden = topic.overrides.contains_key(spec.name);
    let source = topic_config_source(topic, spec, broker);
    let mut e = entry(detail, spec.name, value.clone(), source, spec.kind.wire_type(), || {
        documentation(spec)
    });
    if detail.synonyms && detail.version >= 1 {
        let mut synonyms = Vec::with_capacity(broker.len() + 1);
        if overridden {
            synonyms.push(synonym(spec.name, &value, SOURCE_TOPIC));
        }
        synonyms.extend(synonyms_of(broker));
        e = e.with_synonyms(synonyms);
    }
    Some(e)
}

fn wanted(keys: &Option<Vec<StrBytes>>, name: &str) -> bool {
    match keys {
        None => true,
        Some(list) => list.iter().any(|k| k.as_str() == name),
    }
}

fn describe_topic(
    ctx: &RequestContext<'_>,
    detail: Detail,
    dynamic: &DynamicBrokerConfigs,
    topic: &TopicMeta,
    keys: &Option<Vec<StrBytes>>,
) -> Vec<DescribeConfigsResourceResult> {
    TOPIC_CONFIG_SPECS
        .iter()
        // Kafka 4.x no longer knows the 3.x-only configs: shown only where a topic sets one.
        .filter(|s| !s.legacy || topic.overrides.contains_key(s.name))
        .filter(|s| wanted(keys, s.name))
        .filter_map(|s| {
            let levels = broker_levels(dynamic, &ctx.shard.config.log, s);
            topic_entry(detail, topic, &levels, s)
        })
        .collect()
}

/// The levels of one broker key that Kafka lists on the BROKER resource (empty when the
/// key itself is set nowhere, e.g. `log.retention.hours` when only `.ms` is).
fn broker_key_levels(
    dynamic: &DynamicBrokerConfigs,
    static_log: &LogConfig,
    key: &str,
) -> Option<(&'static TopicConfigSpec, Vec<Level>)> {
    let (spec, _) = topic_config_of(key)?;
    // As Kafka: every synonym at every level, from the first one of this key's own name.
    let levels = broker_levels(dynamic, static_log, spec)
        .into_iter()
        .skip_while(|(n, _, _)| n != key)
        .collect();
    Some((spec, levels))
}

fn broker_entry(
    detail: Detail,
    name: &str,
    levels: &[Level],
    config_type: i8,
    read_only: bool,
    doc: String,
) -> Option<DescribeConfigsResourceResult> {
    let (_, value, source) = levels.first()?;
    let mut e = entry(detail, name, value.clone(), *source, config_type, || doc)
        .with_read_only(read_only);
    if detail.synonyms && detail.version >= 1 {
        e = e.with_synonyms(synonyms_of(levels));
    }
    Some(e)
}

/// This broker's settings (resource name = its node id): the dynamic ones with their
/// levels, the static ones read-only (set in the config file; changing them needs a
/// restart).
fn describe_broker(
    ctx: &RequestContext<'_>,
    detail: Detail,
    dynamic: &DynamicBrokerConfigs,
    keys: &Option<Vec<StrBytes>>,
) -> Vec<DescribeConfigsResourceResult> {
    let static_log = &ctx.shard.config.log;
    let mut out: Vec<_> = broker_entries(&ctx.shard.config)
        .into_iter()
        .filter(|b| wanted(keys, &b.name))
        .filter_map(|b| {
            if let Some((_, levels)) = broker_key_levels(dynamic, static_log, &b.name) {
                return broker_entry(detail, &b.name, &levels, b.config_type, false, b.doc);
            }
            let source = if b.is_default {
                SOURCE_DEFAULT
            } else {
                SOURCE_STATIC_BROKER
            };
            let levels = [(b.name.clone(), b.value.clone(), source)];
            broker_entry(detail, &b.name, &levels, b.config_type, true, b.doc)
        })
        .collect();
    // `log.retention.hours` and the like: listed where set dynamically.
    let units = dynamic_keys().filter(|k| is_unit_synonym(k) && wanted(keys, k));
    for key in units {
        if let Some((spec, levels)) = broker_key_levels(dynamic, static_log, key) {
            out.extend(broker_entry(detail, key, &levels, TYPE_INT, false, spec.doc.into()));
        }
    }
    out
}

/// The cluster-wide default resource (empty name): only the dynamic defaults set on it,
/// as Kafka lists them.
fn describe_cluster_default(
    ctx: &RequestContext<'_>,
    detail: Detail,
    dynamic: &DynamicBrokerConfigs,
    keys: &Option<Vec<StrBytes>>,
) -> Vec<DescribeConfigsResourceResult> {
    dynamic
        .cluster_default
        .keys()
        .filter(|k| wanted(keys, k))
        .filter_map(|key| {
            let (spec, levels) = broker_key_levels(dynamic, &ctx.shard.config.log, key)?;
            let levels: Vec<Level> = levels
                .into_iter()
                .filter(|(_, _, s)| *s != SOURCE_DYNAMIC_BROKER)
                .collect();
            let config_type = if is_unit_synonym(key) {
                TYPE_INT
            } else {
                broker_config_type(spec)
            };
            broker_entry(detail, key, &levels, config_type, false, spec.doc.into())
        })
        .collect()
}

/// A group's configs: its own where set (GROUP_CONFIG), else the broker's defaults under
/// their broker names (`group.consumer.session.timeout.ms`, ...).
fn describe_group(
    detail: Detail,
    overrides: Option<&std::collections::BTreeMap<String, String>>,
    keys: &Option<Vec<StrBytes>>,
) -> Vec<DescribeConfigsResourceResult> {
    GROUP_CONFIG_KEYS
        .iter()
        .filter(|(name, _)| wanted(keys, name))
        .filter_map(|(name, doc)| {
            let value = group_config_value(DEFAULT_TIMEOUTS, overrides, name)?;
            let overridden = overrides.is_some_and(|o| o.contains_key(*name));
            let source = if overridden { SOURCE_GROUP } else { SOURCE_DEFAULT };
            let config_type = if is_string_group_config(name) {
                TYPE_STRING
            } else if is_boolean_group_config(name) {
                TYPE_BOOLEAN
            } else {
                TYPE_INT
            };
            let mut e = entry(detail, name, value.clone(), source, config_type, || {
                doc.to_string()
            });
            if detail.synonyms && detail.version >= 1 {
                let mut synonyms = Vec::with_capacity(2);
                if overridden {
                    synonyms.push(synonym(name, &value, SOURCE_GROUP));
                }
                let broker_name = format!("group.{name}");
                let default = group_config_value(DEFAULT_TIMEOUTS, None, name).unwrap_or_default();
                synonyms.push(synonym(&broker_name, &default, SOURCE_DEFAULT));
                e = e.with_synonyms(synonyms);
            }
            Some(e)
        })
        .collect()
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let snapshot = ctx.shard.metadata.load_full();
    let dynamic = &*snapshot.dynamic_broker;
    let detail = Detail {
        version: ctx.version,
        synonyms: request.include_synonyms,
        documentation: request.include_documentation,
    };
    let mut results = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone())
            .with_error_code(0)
            .with_error_message(None);
        let keys = &resource.configuration_keys;
        let refused = config_refusal(ctx, resource.resource_type, &resource.resource_name);
        let outcome: Result<_, (i16, &'static str)> = match (refused, resource.resource_type) {
            (Some(code), _) => Err((code, "Authorization failed.")),
            (None, resource_type) => match resource_type {
            RESOURCE_TOPIC => match snapshot.topic(resource.resource_name.as_str()) {
                Some(topic) => Ok(describe_topic(ctx, detail, dynamic, topic, keys)),
                None => Err((
                    ResponseError::UnknownTopicOrPartition.code(),
                    "This server does not host this topic-partition.",
                )),
            },
            RESOURCE_BROKER => {
                let name = resource.resource_name.as_str();
                if name.is_empty() {
                    Ok(describe_cluster_default(ctx, detail, dynamic, keys))
                } else if name != ctx.shard.config.node_id.to_string() {
                    Err((ResponseError::InvalidRequest.code(), "unknown broker id"))
                } else {
                    Ok(describe_broker(ctx, detail, dynamic, keys))
                }
            }
            RESOURCE_GROUP if !resource.resource_name.is_empty() => {
                let configs = snapshot.group_configs.get(resource.resource_name.as_str());
                Ok(describe_group(detail, configs.map(|c| &**c), keys))
            }
            _ => Err((
                ResponseError::InvalidRequest.code(),
                "only topic, broker and group configs exist here",
            )),
            },
        };
        results.push(match outcome {
            Ok(configs) => result.with_configs(configs),
            Err((code, message)) => result
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_static_str(message))),
        });
    }
    DescribeConfigsResponse::default()
        .with_throttle_time_ms(0)
        .with_results(results)
}
