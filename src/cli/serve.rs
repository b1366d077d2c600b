//! `sluice serve`: load configuration (embedded defaults ← file ← flags) and run the broker.

use super::ServeArgs;
use crate::config::BrokerConfig;

pub fn load_config(args: &ServeArgs) -> Result<BrokerConfig, String> {
    let mut config = match &args.config {
        Some(path) => BrokerConfig::from_file(path).map_err(|e| e.to_string())?,
        None => BrokerConfig::default(),
    };
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(listen) = &args.listen {
        config.listen = listen.parse().map_err(|_| {
            format!("invalid --listen `{listen}`: expected HOST:PORT with a numeric host")
        })?;
    }
    if let Some(adv) = &args.advertised_listener {
        config.advertised_listener = Some(adv.clone());
    }
    if let Some(admin) = &args.admin_listen {
        config.admin_listen = admin
            .parse()
            .map_err(|_| format!("invalid --admin-listen `{admin}`: expected HOST:PORT"))?;
    }
    if let Some(cores) = &args.cores {
        config.cores = cores.clone();
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

pub fn run(args: ServeArgs) -> Result<(), String> {
    let config = load_config(&args)?;
    if args.check_config {
        println!("configuration OK");
        return Ok(());
    }
    Err("the broker is not assembled yet".to_string())
}
