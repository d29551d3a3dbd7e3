//! The example page the broker serves at `GET /`, and the JavaScript client it
//! loads (`GET /switchyard.js`): both are `clients/js/` built into the binary, so
//! a browser pointed at the broker has a working client with no build step. The
//! page connects back to `/ws` on the same host, which the Origin rule admits.

use super::{Answer, Route};

/// `clients/js/index.html`.
const INDEX: &str = include_str!("../../../clients/js/index.html");
/// `clients/js/switchyard.js`.
const MODULE: &str = include_str!("../../../clients/js/switchyard.js");

/// `GET /`: the example page.
pub(super) fn index() -> Route {
    file("text/html; charset=utf-8", INDEX)
}

/// `GET /switchyard.js`: the client module (a JavaScript type, or browsers refuse
/// to run it as a module).
pub(super) fn module() -> Route {
    file("text/javascript; charset=utf-8", MODULE)
}

fn file(content_type: &'static str, body: &str) -> Route {
    Route::Answer(Answer {
        code: 200,
        status: "OK",
        content_type,
        body: body.to_string(),
    })
}
