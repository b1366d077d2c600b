//! One file per Kafka API, each exposing `handle(ctx, request)`. The modules are declared
//! from `registry::api_table!`, so a new API's handler file is picked up by its table line;
//! routing to them is `server::routing`. A handler must not call another handler.

use super::registry::api_table;

macro_rules! handler_modules {
    ($( $api:ident $min:literal ..= $max:literal, $request:ty => $module:ident, $authorize:expr; )*) => {
        $( pub mod $module; )*
    };
}

api_table!(handler_modules);

/// Not an API of its own: the refusal of pre-0.11 Produce versions, answered by dispatch.
pub mod produce_legacy;
