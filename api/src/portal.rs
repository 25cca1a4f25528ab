//! The reader's portal (`/portal/`): a page, a script and a style sheet, compiled into the
//! binary and served by it (offline: nothing comes from elsewhere). The script calls the same
//! API with the reader's key as any client does, so the portal can do only what that key's
//! scope allows. A Content-Security-Policy lets the page run its own script alone.

use std::hash::{DefaultHasher, Hash, Hasher};

use poem::http::{StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response, Route};

/// The portal's files: name, media type, content.
const ASSETS: [(&str, &str, &str); 3] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../portal/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../portal/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../portal/style.css"),
    ),
];

/// Only the portal's own files run or style the page; page images arrive as `blob:` URLs
/// (fetched with the key, which an `<img>` cannot send); no frame may hold it.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob: data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The portal's routes, to nest at `/portal`.
pub fn routes() -> Route {
    let mut route = Route::new().at("/", poem::get(asset("index.html")));
    for (name, _, _) in ASSETS {
        route = route.at(format!("/{name}"), poem::get(asset(name)));
    }
    route
}

/// `GET /` goes to the portal: people who open HBI's address want it. (A middleware, as the
/// API is nested at `/` and would answer that path itself.)
pub async fn send_home<E: Endpoint>(endpoint: std::sync::Arc<E>, request: Request) -> poem::Result<Response> {
    if request.uri().path() == "/" && matches!(*request.method(), poem::http::Method::GET | poem::http::Method::HEAD) {
        return Ok(Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, "portal/")
            .finish());
    }
    endpoint.call(request).await.map(IntoResponse::into_response)
}

fn asset(name: &'static str) -> impl Endpoint {
    let (media_type, content) = ASSETS
        .iter()
        .find(|(file, _, _)| *file == name)
        .map(|(_, media_type, content)| (*media_type, *content))
        .unwrap_or(("text/plain", ""));
    let mut hasher = DefaultHasher::new();
    content.hash(&mut hasher);
    let etag = format!("\"{:016x}\"", hasher.finish());
    poem::endpoint::make_sync(move |request: Request| {
        let seen = request
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag));
        let builder = Response::builder()
            .header(header::ETAG, etag.as_str())
            // Revalidated on each load: a new release is seen at once, an unchanged one costs a 304.
            .header(header::CACHE_CONTROL, "no-cache")
            .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .header(header::REFERRER_POLICY, "no-referrer");
        if seen {
            return builder.status(StatusCode::NOT_MODIFIED).finish();
        }
        builder.content_type(media_type).body(content).into_response()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_local_and_the_page_has_no_inline_script_or_style() {
        for (name, _, content) in ASSETS {
            for remote in ["http://", "https://", "//cdn", "@import"] {
                let uses_remote = content
                    .lines()
                    // The script's comments may name things; its code may not load them.
                    .filter(|line| !line.trim_start().starts_with("//"))
                    .any(|line| line.contains(remote) && !line.contains("http://www.w3.org"));
                assert!(!uses_remote, "{name} refers to {remote}");
            }
        }
        let page = ASSETS[0].2;
        assert!(page.contains(r#"<script type="module" src="app.js"></script>"#));
        assert_eq!(page.matches("<script").count(), 1, "one script, from a file");
        assert!(!page.contains("style="), "no inline styles (the policy refuses them)");
        let inline_handler = page.split(" on").skip(1).any(|rest| {
            rest.split_once('=')
                .is_some_and(|(name, _)| name.chars().all(|c| c.is_ascii_alphabetic()))
        });
        assert!(!inline_handler, "no inline event handlers");
        assert!(
            !ASSETS[1].2.contains("innerHTML"),
            "the script makes elements, never parses HTML"
        );
    }

    /// WCAG's contrast ratio of two `#rrggbb` colours.
    fn contrast(a: &str, b: &str) -> f64 {
        let luminance = |hex: &str| {
            let channel = |at: usize| {
                let value = f64::from(u8::from_str_radix(&hex[at..at + 2], 16).unwrap_or(0)) / 255.0;
                if value <= 0.04045 {
                    value / 12.92
                } else {
                    ((value + 0.055) / 1.055).powf(2.4)
                }
            };
            0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
        };
        let (x, y) = (luminance(a), luminance(b));
        (x.max(y) + 0.05) / (x.min(y) + 0.05)
    }

    #[test]
    fn text_colours_meet_the_contrast_of_wcag_aa_on_the_page_and_its_panels() {
        let style = ASSETS[2].2;
        let colour = |name: &str| {
            style
                .lines()
                .find_map(|line| line.trim().strip_prefix(&format!("--{name}:")))
                .map(|value| value.trim().trim_end_matches(';').to_owned())
                .unwrap_or_else(|| panic!("--{name} is set"))
        };
        for background in ["paper", "wash"] {
            for text in ["ink", "muted", "link", "ok", "bad", "warn"] {
                let ratio = contrast(&colour(text), &colour(background));
                assert!(ratio >= 4.5, "--{text} on --{background}: {ratio:.2}");
            }
        }
        // White on the buttons' colour.
        assert!(contrast("#ffffff", &colour("accent")) >= 4.5);
        assert!((contrast("#000000", "#ffffff") - 21.0).abs() < 0.01);
    }
}
