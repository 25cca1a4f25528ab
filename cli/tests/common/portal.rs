//! The reader's portal driven in a real browser: headless Chromium through chromedriver
//! (WebDriver, with the fantoccini client), walking what a reader does (sign in, upload a
//! book, watch its job, open a chapter, search, follow a hit, ask and follow a citation,
//! the admin page, a read key, a phone-sized screen), a screenshot kept of every step. The
//! same walk runs against the embedded and the production shape.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::free_port;

/// Where the screenshots of `shape`'s walk go: `$HBI_TEST_ARTIFACTS/portal/<shape>`, else the
/// cargo target's temporary directory.
pub fn screenshot_dir(shape: &str) -> PathBuf {
    let root = std::env::var_os("HBI_TEST_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    root.join("portal").join(shape)
}

/// Headless Chromium under chromedriver, reaching 127.0.0.1 alone (any other host fails to
/// resolve, so an asset from elsewhere could not load).
pub struct Browser {
    driver: Child,
    pub client: Client,
    _profile: tempfile::TempDir,
    shots: PathBuf,
    taken: std::cell::Cell<usize>,
}

impl Browser {
    pub async fn start(shape: &str) -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (Debian package chromium-driver; scripts/test installs it)");
        let profile = tempfile::tempdir().expect("profile dir");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-quic", "--window-size=1280,900",
                    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(err) if Instant::now() > deadline => panic!("chromedriver did not start a session: {err}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let shots = screenshot_dir(shape);
        std::fs::create_dir_all(&shots).expect("screenshot dir");
        Self {
            driver,
            client,
            _profile: profile,
            shots,
            taken: std::cell::Cell::new(0),
        }
    }

    /// Keeps a screenshot of the window as `NN-name.png`.
    pub async fn shot(&self, name: &str) {
        self.taken.set(self.taken.get() + 1);
        let png = self.client.screenshot().await.expect("screenshot");
        let path = self.shots.join(format!("{:02}-{name}.png", self.taken.get()));
        std::fs::write(&path, png).expect("write screenshot");
    }

    /// Runs `script` (a function body) in the page with `args`.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.expect("script runs")
    }

    /// Waits until `script` returns something truthy and returns it; panics with `what`
    /// and the page's main text after `timeout`.
    pub async fn until(&self, what: &str, script: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.js(script, vec![]).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(flag) => *flag,
                Value::Number(number) => number.as_f64() != Some(0.0),
                Value::String(text) => !text.is_empty(),
                Value::Array(items) => !items.is_empty(),
                Value::Object(_) => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() > deadline {
                let shown = self
                    .js(
                        "return document.getElementById('main')?.innerText ?? document.body.innerText",
                        vec![],
                    )
                    .await;
                panic!("{what}: not so after {timeout:?}; the page shows:\n{shown}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.expect(css);
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .expect(css)
            .click()
            .await
            .expect("click");
    }

    /// The controls of the page without a label, and images without a text alternative.
    pub async fn unlabelled(&self) -> Value {
        self.js(
            "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                .filter((control) => !control.hidden && control.labels.length === 0 && !control.getAttribute('aria-label'))
                .map((control) => control.outerHTML)
                .concat([...document.querySelectorAll('img:not([alt])')].map((image) => image.outerHTML));",
            vec![],
        )
        .await
    }

    /// Notes what the page's Content-Security-Policy refuses from now on (until the next
    /// page load).
    pub async fn watch_policy(&self) {
        self.js(
            "window.cspViolations = [];
             document.addEventListener('securitypolicyviolation', (event) => window.cspViolations.push(event.violatedDirective + ' ' + event.blockedURI));",
            vec![],
        )
        .await;
    }

    /// Asserts that the policy refused nothing since [`Self::watch_policy`].
    pub async fn assert_nothing_refused(&self) {
        let violations = self.js("return window.cspViolations", vec![]).await;
        assert_eq!(violations, json!([]), "nothing the Content-Security-Policy refused");
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

/// What the walk needs of the server and the book.
pub struct Walk<'a> {
    /// `http://127.0.0.1:PORT` of `hbi serve` or `hbi api`.
    pub base: &'a str,
    pub admin_key: &'a str,
    pub read_key: &'a str,
    pub book: &'a Path,
    pub title: &'a str,
    /// The question to ask, when a model is configured.
    pub question: Option<&'a str>,
    /// How long the book's job may take.
    pub ingest_timeout: Duration,
}

/// An index entry of the book printed as such on its first page: the phrase to search,
/// the page it is on.
async fn phrase_of_the_index(http: &reqwest::Client, base: &str, book_id: &str) -> (String, u64) {
    let index: Value = http
        .get(format!("{base}/books/{book_id}/index"))
        .send()
        .await
        .expect("index")
        .json()
        .await
        .expect("index json");
    let normalise = |word: &str| word.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
    for entry in index.as_array().expect("entries") {
        let term = entry["term"].as_str().unwrap_or_default();
        let words: Vec<String> = term.split_whitespace().map(normalise).collect();
        if words.len() < 2 || words.len() > 3 || !term.chars().all(|c| c.is_alphabetic() || c == ' ') {
            continue;
        }
        let Some(page) = entry["pages"][0]["first_page"].as_u64() else {
            continue;
        };
        let located: Value = http
            .get(format!("{base}/books/{book_id}/pages/{page}/words"))
            .send()
            .await
            .expect("words")
            .json()
            .await
            .expect("words json");
        let printed: Vec<String> = located["words"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|word| normalise(word["text"].as_str().unwrap_or_default()))
            .collect();
        if printed.windows(words.len()).any(|window| window == words.as_slice()) {
            return (term.to_owned(), page);
        }
    }
    panic!("no index entry of the book is printed on its first page as a phrase");
}

/// Walks the portal as a reader and an admin would; returns the book's id.
pub async fn walk(walk: &Walk<'_>, shape: &str) -> String {
    let browser = Browser::start(shape).await;
    let client = &browser.client;
    let base = walk.base;

    // Sign in. `/` leads to the portal.
    client.goto(&format!("{base}/")).await.expect("open HBI");
    browser
        .until(
            "the sign-in form",
            "return !!document.getElementById('api-key')",
            Duration::from_secs(20),
        )
        .await;
    assert!(
        browser.js("return location.pathname", vec![]).await == "/portal/",
        "/ leads to the portal"
    );
    browser.watch_policy().await;
    browser.js("window.sameDocument = true", vec![]).await;
    browser.shot("sign-in").await;
    assert_eq!(browser.unlabelled().await, json!([]), "every control has a label");
    browser.fill("#api-key", "not-a-key").await;
    browser.click("#signin button[type=submit]").await;
    browser
        .until(
            "a wrong key is refused in words",
            "return document.getElementById('signin-error')?.textContent.includes('not valid')",
            Duration::from_secs(10),
        )
        .await;
    // By keyboard alone: the key field has the focus, Enter signs in.
    let focused = browser.js("return document.activeElement.id", vec![]).await;
    assert_eq!(focused, "api-key", "the key field has the focus");
    browser.fill("#api-key", &format!("{}\u{e007}", walk.admin_key)).await;
    browser
        .until(
            "the library after signing in",
            "return document.querySelector('main h1')?.textContent === 'Library'",
            Duration::from_secs(20),
        )
        .await;
    let stored = browser
        .js(
            "return [sessionStorage.getItem('hbi.key'), localStorage.length, location.href]",
            vec![],
        )
        .await;
    assert_eq!(stored[0], walk.admin_key, "the key is kept for the session");
    assert_eq!(stored[1], 0, "and nowhere longer");
    assert!(
        !stored[2].as_str().unwrap_or_default().contains(walk.admin_key),
        "never in a URL"
    );

    // Upload: the file input, the title, the upload's progress bar, then the job's.
    let file = client.find(Locator::Css("#upload-file")).await.expect("file input");
    let canonical = walk.book.canonicalize().expect("the book's file");
    file.send_keys(&canonical.display().to_string())
        .await
        .expect("choose the file");
    browser.fill("#upload-title", walk.title).await;
    browser.click("#upload-submit").await;
    let row = browser
        .until(
            "the uploaded book in the library",
            &format!(
                "const link = [...document.querySelectorAll('#library-rows tr[data-book] a')].find((a) => a.textContent === {});
                 return link ? link.closest('tr').dataset.book : null;",
                json!(walk.title)
            ),
            Duration::from_secs(60),
        )
        .await;
    let book_id = row.as_str().expect("book id").to_owned();
    let upload_bar = browser
        .js(
            "const bar = document.getElementById('upload-progress'); return [bar.value, bar.max];",
            vec![],
        )
        .await;
    assert_eq!(
        upload_bar[0], upload_bar[1],
        "the upload's bar reached its end: {upload_bar}"
    );
    assert!(
        upload_bar[1].as_f64().unwrap_or_default() > 1000.0,
        "it counted the file's bytes: {upload_bar}"
    );
    browser.shot("uploaded").await;
    // The row follows the job by itself (its event stream): progress, then done.
    let cell = format!("document.querySelector('#library-rows tr[data-book=\"{book_id}\"] .job')");
    let mut seen_progress = Vec::new();
    let deadline = Instant::now() + walk.ingest_timeout;
    loop {
        let state = browser
            .js(
                &format!(
                    "const cell = {cell}; if (!cell) return null;
                     const bar = cell.querySelector('progress');
                     return [cell.querySelector('.status')?.textContent ?? '', bar ? bar.value : null, bar ? bar.max : null];"
                ),
                vec![],
            )
            .await;
        if let Some(done) = state[1].as_f64().filter(|done| *done > 0.0) {
            seen_progress.push(done);
        }
        if state[0] == "done" {
            break;
        }
        assert!(
            !matches!(state[0].as_str(), Some("failed for good" | "cancelled")),
            "the job ended badly: {state}"
        );
        if seen_progress.len() == 1 {
            browser.shot("processing").await;
            seen_progress.push(-1.0);
        }
        assert!(
            Instant::now() < deadline,
            "the job did not finish in {:?}: {state}",
            walk.ingest_timeout
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        browser.js("return window.sameDocument === true", vec![]).await,
        true,
        "the library followed the job without reloading"
    );
    let pages = browser
        .until(
            "the row shows the book's pages and status",
            &format!(
                "const row = document.querySelector('#library-rows tr[data-book=\"{book_id}\"]');
                 const cells = row.querySelectorAll('td');
                 return ['ready', 'needs review'].includes(cells[3].textContent) ? Number(cells[2].textContent) : 0;"
            ),
            Duration::from_secs(10),
        )
        .await;
    assert!(pages.as_u64().unwrap_or_default() > 10, "{pages}");
    browser.shot("library").await;

    // A chapter from the contents: its page and its image.
    let http = super::client_with_key(walk.admin_key);
    let toc: Value = http
        .get(format!("{base}/books/{book_id}/toc"))
        .send()
        .await
        .expect("toc")
        .json()
        .await
        .expect("toc json");
    let chapter = toc
        .as_array()
        .into_iter()
        .flatten()
        .find(|node| node["page_number"].as_u64().is_some_and(|page| page > 1))
        .expect("a chapter with a page")
        .clone();
    let chapter_page = chapter["page_number"].as_u64().expect("page");
    client
        .find(Locator::Css(&format!("#library-rows tr[data-book=\"{book_id}\"] a")))
        .await
        .expect("the book's link")
        .click()
        .await
        .expect("open the book");
    browser
        .until(
            "the book's contents",
            &format!(
                "return [...document.querySelectorAll('#toc a')].some((a) => a.textContent === {})",
                json!(chapter["title"])
            ),
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(
        browser.unlabelled().await,
        json!([]),
        "every control of the book view has a label"
    );
    browser.shot("book").await;
    browser
        .js(
            &format!(
                "[...document.querySelectorAll('#toc a')].find((a) => a.textContent === {}).click()",
                json!(chapter["title"])
            ),
            vec![],
        )
        .await;
    let image = browser
        .until(
            "the chapter's page image",
            "const image = document.getElementById('page-image');
             return image && image.complete && image.naturalWidth > 0 ? [image.naturalWidth, location.hash] : null;",
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(image[0], 1200, "{image}");
    assert!(
        image[1]
            .as_str()
            .unwrap_or_default()
            .ends_with(&format!("/page/{chapter_page}")),
        "{image}"
    );
    let heading = browser
        .js("return document.querySelector('main h1').textContent", vec![])
        .await;
    assert!(
        heading
            .as_str()
            .unwrap_or_default()
            .contains(&format!("page {chapter_page} of")),
        "{heading}"
    );
    browser.shot("chapter-page").await;

    // Search a phrase of the index, follow the hit on its page: marked on the image.
    let (phrase, phrase_page) = phrase_of_the_index(&http, base, &book_id).await;
    browser.click("nav a[data-nav=search]").await;
    browser
        .until(
            "the search form",
            "return !!document.getElementById('search-q')",
            Duration::from_secs(10),
        )
        .await;
    browser.fill("#search-q", &phrase).await;
    client
        .find(Locator::Css("#search-book"))
        .await
        .expect("book select")
        .select_by_value(&book_id)
        .await
        .expect("choose the book");
    browser.click("input[name=mode][value=keyword]").await;
    browser.click("#search button[type=submit]").await;
    let hit = format!("/page/{phrase_page}?");
    browser
        .until(
            "a hit on the phrase's page",
            &format!("return [...document.querySelectorAll('#hits a.hit-link')].some((a) => a.getAttribute('href').includes({}))", json!(hit)),
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(
        browser.unlabelled().await,
        json!([]),
        "every control of the search has a label"
    );
    browser.shot("search").await;
    browser
        .js(
            &format!("[...document.querySelectorAll('#hits a.hit-link')].find((a) => a.getAttribute('href').includes({})).click()", json!(hit)),
            vec![],
        )
        .await;
    let marks = browser
        .until(
            "the phrase marked on the page image",
            "const marks = [...document.querySelectorAll('#page-sheet .hit')];
             const image = document.getElementById('page-image');
             if (!image || !marks.length) return null;
             const sheet = image.getBoundingClientRect();
             return marks.map((mark) => {
               const box = mark.getBoundingClientRect();
               return [mark.dataset.word, box.left >= sheet.left - 1 && box.right <= sheet.right + 1 && box.top >= sheet.top - 1 && box.bottom <= sheet.bottom + 1, box.width > 0 && box.height > 0];
             });",
            Duration::from_secs(60),
        )
        .await;
    let marked: Vec<String> = marks
        .as_array()
        .expect("marks")
        .iter()
        .map(|mark| {
            assert_eq!(
                (&mark[1], &mark[2]),
                (&json!(true), &json!(true)),
                "a mark inside the image: {mark}"
            );
            mark[0].as_str().unwrap_or_default().to_lowercase()
        })
        .collect();
    for word in phrase.split_whitespace() {
        assert!(
            marked.iter().any(|mark| mark.contains(&word.to_lowercase())),
            "{word} of {phrase:?} is marked: {marked:?}"
        );
    }
    let in_text = browser
        .js("return document.querySelectorAll('#page-text mark').length", vec![])
        .await;
    assert!(
        in_text.as_u64().unwrap_or_default() >= 2,
        "the phrase is marked in the text too"
    );
    browser.shot("hit-on-page").await;

    // Ask, and follow a citation to its page.
    if let Some(question) = walk.question {
        browser.click("nav a[data-nav=ask]").await;
        browser
            .until(
                "the question box",
                "return !!document.getElementById('ask-q')",
                Duration::from_secs(10),
            )
            .await;
        browser.fill("#ask-q", question).await;
        client
            .find(Locator::Css("#ask-book"))
            .await
            .expect("book select")
            .select_by_value(&book_id)
            .await
            .expect("choose the book");
        browser.click("#ask button[type=submit]").await;
        let cited = browser
            .until(
                "an answer with citations",
                "const links = [...document.querySelectorAll('#claims a.citation')]; return links.length ? links.map((a) => a.getAttribute('href')) : null;",
                Duration::from_secs(60),
            )
            .await;
        assert_eq!(
            browser.unlabelled().await,
            json!([]),
            "every control of the question box has a label"
        );
        browser.shot("answer").await;
        let first = cited[0].as_str().expect("href").to_owned();
        browser.click("#claims a.citation").await;
        browser
            .until(
                "the cited page",
                &format!(
                    "const image = document.getElementById('page-image');
                     return location.hash === {} && image && image.complete && image.naturalWidth > 0;",
                    json!(first)
                ),
                Duration::from_secs(60),
            )
            .await;
        browser.shot("cited-page").await;
    }

    // Admin: a knob out of its range is refused in place.
    browser.click("nav a[data-nav=admin]").await;
    let knob = browser
        .until(
            "the knobs form",
            "const input = document.querySelector('#config input[type=number][max]'); return input ? input.id : null;",
            Duration::from_secs(20),
        )
        .await;
    let knob = knob.as_str().expect("knob").to_owned();
    let too_big = browser
        .js(
            &format!("return String(Number(document.getElementById('{knob}').max) + 1)"),
            vec![],
        )
        .await;
    browser
        .fill(&format!("#{knob}"), too_big.as_str().expect("number"))
        .await;
    browser.click("#config button[type=submit]").await;
    let refused = browser
        .until(
            "the knob's error beside it",
            &format!(
                "const input = document.getElementById('{knob}');
                 const error = document.getElementById('{knob}-error').textContent;
                 return input.getAttribute('aria-invalid') === 'true' && document.activeElement === input ? error : null;"
            ),
            Duration::from_secs(10),
        )
        .await;
    assert!(!refused.as_str().unwrap_or_default().is_empty());
    assert_eq!(
        browser.unlabelled().await,
        json!([]),
        "every control of the admin page has a label"
    );
    browser.shot("admin").await;

    // A read key: no admin page, no admin data (the API refuses the portal's own request).
    browser.click("#sign-out").await;
    browser
        .until(
            "the sign-in form again",
            "return !!document.getElementById('api-key')",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(
        browser.js("return sessionStorage.getItem('hbi.key')", vec![]).await,
        Value::Null
    );
    browser.fill("#api-key", walk.read_key).await;
    browser.click("#signin button[type=submit]").await;
    browser
        .until(
            "the library for the read key",
            "return document.querySelector('main h1')?.textContent === 'Library'",
            Duration::from_secs(20),
        )
        .await;
    let offered = browser
        .js(
            "return [document.getElementById('nav-admin').hidden, !!document.getElementById('upload')]",
            vec![],
        )
        .await;
    assert_eq!(
        offered,
        json!([true, false]),
        "a read key is offered neither admin nor upload"
    );
    browser.assert_nothing_refused().await;
    client
        .goto(&format!("{base}/portal/#/admin"))
        .await
        .expect("the admin page");
    browser
        .until(
            "the admin page refused",
            "return !!document.getElementById('not-admin')",
            Duration::from_secs(10),
        )
        .await;
    browser.watch_policy().await;
    let statuses = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             Promise.all(['config', 'keys', 'dlq'].map((path) => fetch('/' + path, { headers: { 'X-API-Key': sessionStorage.getItem('hbi.key') } }).then((r) => r.status)))
               .then(done);",
            vec![],
        )
        .await
        .expect("fetch as the read key");
    assert_eq!(statuses, json!([403, 403, 403]), "a read key reaches no admin data");
    browser.shot("read-key").await;
    browser.assert_nothing_refused().await;

    // A phone: the page view fits 390 pixels, the contents fold away.
    client.set_window_size(390, 844).await.expect("resize");
    client
        .goto(&format!("{base}/portal/#/book/{book_id}/page/{chapter_page}"))
        .await
        .expect("a page on a phone");
    browser.watch_policy().await;
    let fits = browser
        .until(
            "the page view on a phone",
            "const image = document.getElementById('page-image');
             return image && image.complete && image.naturalWidth > 0 ? [document.documentElement.scrollWidth, window.innerWidth] : null;",
            Duration::from_secs(30),
        )
        .await;
    assert!(
        fits[0].as_f64().unwrap_or(f64::MAX) <= fits[1].as_f64().unwrap_or_default() + 1.0,
        "nothing wider than the screen: {fits}"
    );
    browser.shot("phone").await;

    browser.assert_nothing_refused().await;
    browser.close().await;
    book_id
}
