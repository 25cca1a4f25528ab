// HBI's reader's portal: a small single-page app over HBI's own HTTP API (the same routes,
// keys and scopes as every other client). No build step and no dependencies: plain ES
// modules the browser runs as they are. Every element is made with `h` (text goes in as
// text nodes, never as HTML), so nothing a book or a user wrote can run as script.

const API_ROOT = new URL('../', document.baseURI);
const KEY_ITEM = 'hbi.key';
const SCOPES = ['read', 'write', 'admin'];

// ---------------------------------------------------------------------------------------
// Elements

function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name === 'class') element.className = value;
    else if (name in element && typeof value !== 'string') element[name] = value;
    else element.setAttribute(name, value === true ? '' : value);
  }
  append(element, children);
  return element;
}

function append(element, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function replace(element, ...children) {
  element.replaceChildren();
  return append(element, children);
}

function announce(message) {
  const live = document.getElementById('announce');
  live.textContent = '';
  // A fresh text node after a tick, so screen readers announce a repeated message too.
  setTimeout(() => { live.textContent = message; }, 50);
}

// ---------------------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(status, message, detail) {
    super(message);
    this.status = status;
    this.detail = detail;
  }
}

const session = {
  get key() { return sessionStorage.getItem(KEY_ITEM); },
  set key(value) {
    if (value) sessionStorage.setItem(KEY_ITEM, value);
    else sessionStorage.removeItem(KEY_ITEM);
  },
  caller: null,
  can(scope) {
    return !!this.caller && SCOPES.indexOf(this.caller.scope) >= SCOPES.indexOf(scope);
  },
};

function apiUrl(path, query) {
  const url = new URL(path.replace(/^\//, ''), API_ROOT);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, value);
  }
  return url;
}

function authHeaders(key = session.key) {
  return key ? { 'X-API-Key': key } : {};
}

// FastAPI's error shapes in words: `{"detail": "..."}` or a list of `{loc, msg}`.
function errorMessage(status, body) {
  const detail = body && body.detail;
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) return detail.map((issue) => `${(issue.loc || []).slice(1).join('.') || 'request'}: ${issue.msg}`).join('; ');
  if (status === 0) return 'HBI cannot be reached';
  return `HBI answered ${status}`;
}

async function api(path, { method = 'GET', query, json, key, signal } = {}) {
  const headers = authHeaders(key);
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(apiUrl(path, query), { method, headers, body, signal });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, 'HBI cannot be reached');
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!response.ok) {
    if (response.status === 401 && !key) signOut('Your key is no longer valid: sign in again.');
    throw new ApiError(response.status, errorMessage(response.status, data), data && data.detail);
  }
  return data;
}

async function apiBlob(path, signal) {
  const response = await fetch(apiUrl(path), { headers: authHeaders(), signal });
  if (!response.ok) {
    let data = null;
    try { data = await response.json(); } catch { /* not JSON */ }
    throw new ApiError(response.status, errorMessage(response.status, data));
  }
  return response.blob();
}

// A job's Server-Sent Events, read with fetch (EventSource cannot send the key): calls
// `onUpdate(view, event)` for each event until the `end` event, reconnecting with
// Last-Event-ID when the stream drops.
async function followJob(jobId, onUpdate, signal) {
  let lastId = null;
  for (let attempt = 0; attempt < 30 && !signal.aborted; attempt += 1) {
    try {
      const headers = authHeaders();
      if (lastId) headers['Last-Event-ID'] = lastId;
      const response = await fetch(apiUrl(`jobs/${jobId}/events`), { headers, signal });
      if (!response.ok || !response.body) throw new ApiError(response.status, `events: ${response.status}`);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, '\n');
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = 'message';
          const data = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            const content = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'event') event = content;
            else if (field === 'data') data.push(content);
            else if (field === 'id') lastId = content;
          }
          if (data.length) {
            onUpdate(JSON.parse(data.join('\n')), event);
            if (event === 'end') return;
          }
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && [401, 403, 404].includes(error.status)) return;
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(1000 * (attempt + 1), 5000)));
  }
}

// An upload with its progress (fetch cannot report an upload's progress; XHR can).
function uploadFile(bookId, file, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open('POST', apiUrl(`books/${bookId}/upload`));
    for (const [name, value] of Object.entries(authHeaders())) request.setRequestHeader(name, value);
    request.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    request.addEventListener('load', () => {
      let data = null;
      try { data = JSON.parse(request.responseText); } catch { /* not JSON */ }
      if (request.status >= 200 && request.status < 300) resolve(data);
      else reject(new ApiError(request.status, errorMessage(request.status, data)));
    });
    request.addEventListener('error', () => reject(new ApiError(0, 'HBI cannot be reached')));
    const form = new FormData();
    form.append('file', file, file.name);
    request.send(form);
  });
}

// ---------------------------------------------------------------------------------------
// Words

const STATUS_WORDS = {
  created: 'no file yet',
  queued: 'queued',
  processing: 'processing',
  ready: 'ready',
  needs_review: 'needs review',
  failed: 'failed',
};

const STATE_WORDS = {
  queued: 'queued',
  running: 'running',
  succeeded: 'done',
  failed: 'failed, will retry',
  dead: 'failed for good',
  cancelled: 'cancelled',
};

const GATE_WORDS = {
  text_coverage: 'Pages carry text',
  garbage_ratio: 'Text is readable',
  toc_sanity: 'Contents are in order',
  index_locator_support: 'Index locators are backed by the pages',
  index_structure: 'Index structure looks right',
  ocr_confidence: 'OCR read the scans with confidence',
  chunk_vector_consistency: 'Every passage has its vector',
};

function words(name) {
  return String(name).replace(/_/g, ' ');
}

function pageLabel(label, number) {
  return label ? `p. ${label}` : `page ${number}`;
}

function plural(count, one, many = `${one}s`) {
  return `${count} ${count === 1 ? one : many}`;
}

// Normalised for matching: lower case, accents and punctuation at the ends dropped.
function normalise(word) {
  return word.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase().replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, '');
}

const STOP_WORDS = new Set('a an and are as at be by for from in into is it of on or that the this to with'.split(' '));

function queryTerms(query) {
  return query.split(/\s+/).map(normalise).filter(Boolean);
}

// A snippet's HTML (`<b>` around matches, everything else escaped by HBI) as nodes.
function snippetNodes(snippet) {
  const decode = (text) => text.replace(/&(lt|gt|amp|quot|#39|#x27);/g, (_, name) => ({ lt: '<', gt: '>', amp: '&', quot: '"', '#39': "'", '#x27': "'" })[name]);
  const nodes = [];
  let marked = false;
  for (const part of snippet.split(/(<b>|<\/b>)/)) {
    if (part === '<b>') marked = true;
    else if (part === '</b>') marked = false;
    else if (part) nodes.push(marked ? h('mark', {}, decode(part)) : decode(part));
  }
  return nodes;
}

// `text` with the words of `terms` marked.
function markedText(text, terms) {
  const wanted = terms.filter((term) => term.length > 1 && !STOP_WORDS.has(term));
  if (!wanted.length) return [text];
  const nodes = [];
  for (const part of text.split(/([\p{L}\p{N}]+)/u)) {
    if (part && wanted.includes(normalise(part))) nodes.push(h('mark', {}, part));
    else if (part) nodes.push(part);
  }
  return nodes;
}

// The word boxes of a page that show `query`: the whole phrase where it stands on the page,
// else each of its words.
function hitBoxes(pageWords, query) {
  const terms = queryTerms(query);
  const words = pageWords.map((word) => normalise(word.text));
  const boxes = [];
  if (terms.length > 1) {
    for (let start = 0; start + terms.length <= words.length; start += 1) {
      if (terms.every((term, offset) => words[start + offset] === term)) {
        boxes.push(...pageWords.slice(start, start + terms.length));
      }
    }
    if (boxes.length) return boxes;
  }
  const wanted = terms.filter((term) => !STOP_WORDS.has(term) || terms.length === 1);
  return pageWords.filter((_, index) => wanted.includes(words[index]));
}

// ---------------------------------------------------------------------------------------
// Routes: #/ (library), #/book/ID, #/book/ID/page/N?q=, #/search?q=, #/ask, #/admin

let viewAbort = new AbortController();
const bookCache = new Map();

function parseRoute() {
  const [path, search] = location.hash.replace(/^#/, '').split('?');
  const parts = (path || '/').split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(search || '') };
}

function link(parts, query) {
  const search = query ? new URLSearchParams(Object.entries(query).filter(([, value]) => value)).toString() : '';
  return `#/${parts.map(encodeURIComponent).join('/')}${search ? `?${search}` : ''}`;
}

async function route() {
  viewAbort.abort();
  viewAbort = new AbortController();
  const signal = viewAbort.signal;
  const main = document.getElementById('main');
  if (!session.key) return showSignIn(main);
  if (!session.caller) {
    try {
      session.caller = await api('whoami');
    } catch (error) {
      if (error.status === 401 || error.status === 403) return signOut('That key is not valid: sign in again.');
      return replace(main, h('p', { class: 'notice bad', role: 'alert' }, error.message));
    }
  }
  showChrome();
  const { parts, query } = parseRoute();
  const [section] = parts;
  markNavigation(section === 'book' || !section ? 'library' : section);
  try {
    if (!section) await showLibrary(main, signal);
    else if (section === 'book' && parts[2] === 'page') await showPage(main, parts[1], Number(parts[3]), query, signal);
    else if (section === 'book') await showBook(main, parts[1], query, signal);
    else if (section === 'search') await showSearch(main, query, signal);
    else if (section === 'ask') await showAsk(main, query, signal);
    else if (section === 'admin') await showAdmin(main, signal);
    else replace(main, h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/' }, 'Back to the library')));
  } catch (error) {
    if (error.name === 'AbortError') return;
    replace(main, h('h1', {}, 'Something went wrong'), h('p', { class: 'notice bad', role: 'alert' }, error.message));
  }
}

function focusHeading(main) {
  const heading = main.querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: false });
  }
}

function markNavigation(current) {
  for (const item of document.querySelectorAll('[data-nav]')) {
    if (item.dataset.nav === current) item.setAttribute('aria-current', 'page');
    else item.removeAttribute('aria-current');
  }
}

function showChrome() {
  document.getElementById('nav').hidden = false;
  document.getElementById('who').hidden = false;
  document.getElementById('nav-admin').hidden = !session.can('admin');
  document.getElementById('who-key').textContent = `Key ${session.caller.key_id} (${session.caller.scope})`;
}

// Shown by the next sign-in form (a sign-out changes the route, which draws the form anew).
let signInMessage = '';

function signOut(message) {
  signInMessage = message || '';
  session.key = null;
  session.caller = null;
  bookCache.clear();
  document.getElementById('nav').hidden = true;
  document.getElementById('who').hidden = true;
  if (location.hash && location.hash !== '#/') location.hash = '#/';
  else showSignIn(document.getElementById('main'));
}

// ---------------------------------------------------------------------------------------
// Sign in

function showSignIn(main, message = signInMessage) {
  signInMessage = '';
  const error = h('p', { class: 'error', id: 'signin-error', role: 'alert' }, message || '');
  const input = h('input', {
    id: 'api-key', name: 'api-key', type: 'password', autocomplete: 'off', spellcheck: 'false',
    required: true, 'aria-describedby': 'signin-hint signin-error',
  });
  const form = h('form', {
    class: 'signin', id: 'signin',
    onsubmit: async (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      try {
        const caller = await api('whoami', { key });
        session.key = key;
        session.caller = caller;
        announce(`Signed in with key ${caller.key_id}`);
        route();
      } catch (failure) {
        error.textContent = failure.status === 401 ? 'That key is not valid.' : failure.message;
        input.setAttribute('aria-invalid', 'true');
        input.focus();
      }
    },
  },
  h('h1', {}, 'Sign in to HBI'),
  h('div', { class: 'field' },
    h('label', { for: 'api-key' }, 'API key'),
    h('span', { class: 'hint', id: 'signin-hint' }, 'Kept in this browser tab only, until you sign out or close it.'),
    input),
  error,
  h('button', { type: 'submit' }, 'Sign in'));
  replace(main, form);
  input.focus();
}

// ---------------------------------------------------------------------------------------
// Library

async function showLibrary(main, signal) {
  const [books, jobs] = await Promise.all([
    api('books/', { query: { limit: 1000 }, signal }),
    api('jobs', { query: { limit: 1000 }, signal }),
  ]);
  const latestJob = new Map();
  for (const job of jobs) if (!latestJob.has(job.book_id)) latestJob.set(job.book_id, job);

  const filter = h('input', { id: 'library-filter', type: 'search', placeholder: 'Title or author' });
  const statusFilter = h('select', { id: 'library-status' },
    h('option', { value: '' }, 'Any status'),
    Object.entries(STATUS_WORDS).map(([value, text]) => h('option', { value }, text)));
  const sort = h('select', { id: 'library-sort' },
    h('option', { value: 'newest' }, 'Newest first'),
    h('option', { value: 'oldest' }, 'Oldest first'),
    h('option', { value: 'title' }, 'Title'),
    h('option', { value: 'pages' }, 'Most pages'));
  const body = h('tbody', { id: 'library-rows' });
  const rows = new Map();

  const render = () => {
    const text = filter.value.trim().toLowerCase();
    const shown = books
      .filter((book) => !text || `${book.title} ${book.author || ''}`.toLowerCase().includes(text))
      .filter((book) => !statusFilter.value || book.status === statusFilter.value);
    const order = {
      newest: (a, b) => b.created_at.localeCompare(a.created_at),
      oldest: (a, b) => a.created_at.localeCompare(b.created_at),
      title: (a, b) => a.title.localeCompare(b.title),
      pages: (a, b) => (b.page_count || 0) - (a.page_count || 0),
    }[sort.value];
    shown.sort(order);
    replace(body, shown.length ? shown.map((book) => rowOf(book)) : h('tr', {}, h('td', { colspan: 5 }, books.length ? 'No book matches.' : 'No books yet: upload one above.')));
  };

  const rowOf = (book) => {
    let row = rows.get(book.id);
    if (!row) {
      row = { element: h('tr', { 'data-book': book.id }), book, job: latestJob.get(book.id) };
      rows.set(book.id, row);
      drawRow(row);
    }
    return row.element;
  };

  const drawRow = (row) => {
    const { book, job } = row;
    replace(row.element,
      h('td', {}, h('a', { href: link(['book', book.id]) }, book.title)),
      h('td', { class: 'hide-narrow' }, book.author || ''),
      h('td', {}, book.page_count ?? ''),
      h('td', {}, h('span', { class: `status ${book.status}` }, STATUS_WORDS[book.status] || book.status)),
      h('td', { class: 'job' }, job ? jobCell(row) : ''));
  };

  const jobCell = (row) => {
    const { job } = row;
    const live = ['queued', 'running', 'failed'].includes(job.state);
    const cell = [];
    const total = job.progress.total || 0;
    cell.push(h('div', {},
      h('span', { class: `status ${job.state}` }, STATE_WORDS[job.state] || job.state),
      job.stage && live ? ` · ${words(job.stage)}` : '',
      total && live ? ` · ${job.progress.done} / ${total}` : ''));
    if (live) {
      cell.push(h('progress', {
        max: total || 1, value: total ? job.progress.done : 0,
        'aria-label': `Progress of ${row.book.title}`,
      }));
    }
    if (job.error && !live) cell.push(h('div', { class: 'error' }, job.error));
    else if (job.error && job.state === 'failed') cell.push(h('div', { class: 'muted' }, `Last attempt: ${job.error}`));
    if (session.can('admin') && (job.state === 'dead' || job.state === 'cancelled')) {
      cell.push(h('button', {
        type: 'button', class: 'quiet',
        onclick: async (event) => {
          event.target.disabled = true;
          try {
            const path = job.state === 'dead' ? `dlq/${job.id}/requeue` : `jobs/${job.id}/retry`;
            row.job = await api(path, { method: 'POST' });
            drawRow(row);
            follow(row);
            announce(`${row.book.title} is queued again`);
          } catch (error) {
            event.target.disabled = false;
            announce(error.message);
            row.element.querySelector('.job').append(h('div', { class: 'error', role: 'alert' }, error.message));
          }
        },
      }, 'Requeue'));
    }
    return cell;
  };

  const follow = (row) => {
    if (!row.job || !['queued', 'running', 'failed'].includes(row.job.state)) return;
    followJob(row.job.id, async (update, event) => {
      row.job = { ...row.job, ...update };
      if (event === 'end') {
        try {
          row.book = await api(`books/${row.book.id}`, { signal });
          const index = books.findIndex((book) => book.id === row.book.id);
          if (index >= 0) books[index] = row.book;
          bookCache.delete(row.book.id);
        } catch { /* keep what is shown */ }
        announce(`${row.book.title}: ${STATE_WORDS[row.job.state] || row.job.state}`);
      }
      drawRow(row);
    }, signal);
  };

  const uploadForm = session.can('write') ? uploadSection(async (book, job) => {
    books.push(book);
    latestJob.set(book.id, job);
    rows.delete(book.id);
    render();
    follow(rows.get(book.id));
  }) : h('p', { class: 'muted' }, 'This key may read only: uploads need a write key.');

  for (const control of [filter, statusFilter, sort]) control.addEventListener('input', render);
  replace(main,
    h('h1', {}, 'Library'),
    uploadForm,
    h('h2', {}, 'Books'),
    h('div', { class: 'row' },
      h('div', { class: 'field' }, h('label', { for: 'library-filter' }, 'Filter'), filter),
      h('div', { class: 'field' }, h('label', { for: 'library-status' }, 'Status'), statusFilter),
      h('div', { class: 'field' }, h('label', { for: 'library-sort' }, 'Sort'), sort)),
    h('table', {},
      h('caption', { class: 'visually-hidden' }, 'Books and their latest jobs'),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Title'), h('th', { scope: 'col', class: 'hide-narrow' }, 'Author'),
        h('th', { scope: 'col' }, 'Pages'), h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Job'))),
      body));
  render();
  for (const row of rows.values()) follow(row);
  focusHeading(main);
}

function uploadSection(onQueued) {
  let chosen = null;
  const title = h('input', { id: 'upload-title', required: true, maxlength: 500 });
  const author = h('input', { id: 'upload-author', maxlength: 500 });
  const language = h('input', { id: 'upload-language', placeholder: 'eng', maxlength: 40, 'aria-describedby': 'upload-language-hint' });
  const file = h('input', { id: 'upload-file', type: 'file', accept: '.pdf,.epub,.djvu,application/pdf,application/epub+zip,image/vnd.djvu', required: true });
  const chosenText = h('span', { id: 'upload-chosen' }, 'No file chosen');
  const progress = h('progress', { id: 'upload-progress', max: 1, value: 0, 'aria-label': 'Upload progress', hidden: true });
  const message = h('p', { id: 'upload-message', role: 'status' });
  const choose = (picked) => {
    chosen = picked;
    chosenText.textContent = picked ? `${picked.name} (${Math.ceil(picked.size / 1024)} KiB)` : 'No file chosen';
    if (picked && !title.value) title.value = picked.name.replace(/\.[^.]+$/, '').replace(/[_-]+/g, ' ');
  };
  file.addEventListener('change', () => choose(file.files[0] || null));
  const zone = h('div', {
    class: 'dropzone', id: 'dropzone',
    ondragover: (event) => { event.preventDefault(); zone.classList.add('over'); },
    ondragleave: () => zone.classList.remove('over'),
    ondrop: (event) => {
      event.preventDefault();
      zone.classList.remove('over');
      if (event.dataTransfer.files.length) choose(event.dataTransfer.files[0]);
    },
  },
  h('p', {}, 'Drop a PDF, EPUB or DjVu file here, or ', h('label', { for: 'upload-file', class: 'link' }, 'choose one'), '.'),
  file, h('p', {}, chosenText));
  const submit = h('button', { type: 'submit', id: 'upload-submit' }, 'Upload');
  const form = h('form', {
    id: 'upload', 'aria-labelledby': 'upload-heading',
    onsubmit: async (event) => {
      event.preventDefault();
      if (!chosen) {
        message.textContent = 'Choose a file first.';
        file.focus();
        return;
      }
      submit.disabled = true;
      progress.hidden = false;
      progress.value = 0;
      message.textContent = 'Uploading…';
      try {
        const book = await api('books/', {
          method: 'POST',
          json: { title: title.value.trim() || chosen.name, author: author.value.trim() || null, language: language.value.trim() || null },
        });
        const accepted = await uploadFile(book.id, chosen, (loaded, total) => {
          progress.max = total;
          progress.value = loaded;
        });
        progress.value = progress.max;
        message.textContent = `${book.title}: uploaded, ${accepted.status === 'succeeded' ? 'already processed' : 'queued'}.`;
        announce(message.textContent);
        form.reset();
        choose(null);
        const job = await api(`jobs/${accepted.job_id}`);
        onQueued(accepted.book, job);
      } catch (error) {
        message.textContent = `Upload failed: ${error.message}`;
      } finally {
        submit.disabled = false;
      }
    },
  },
  h('h2', { id: 'upload-heading' }, 'Add a book'),
  zone,
  h('div', { class: 'row' },
    h('div', { class: 'field' }, h('label', { for: 'upload-title' }, 'Title'), title),
    h('div', { class: 'field' }, h('label', { for: 'upload-author' }, 'Author'), author),
    h('div', { class: 'field' }, h('label', { for: 'upload-language' }, 'Language'),
      h('span', { class: 'hint', id: 'upload-language-hint' }, 'ISO 639 codes for OCR, e.g. eng or eng+deu'), language)),
  submit, progress, message);
  return form;
}

// ---------------------------------------------------------------------------------------
// A book: contents sidebar, quality, index browser

async function bookData(id, signal) {
  if (!bookCache.has(id)) {
    const [book, toc] = await Promise.all([api(`books/${id}`, { signal }), api(`books/${id}/toc`, { signal })]);
    bookCache.set(id, { book, toc });
  }
  return bookCache.get(id);
}

function tocSidebar(book, toc, currentPage) {
  const entry = (node) => {
    const target = node.page_number ? h('a', {
      href: link(['book', book.id, 'page', String(node.page_number)]),
      'aria-current': node.page_number === currentPage ? 'page' : false,
    }, node.title) : h('span', {}, node.title);
    const label = node.page_label ? h('span', { class: 'label' }, node.page_label) : null;
    if (!node.children.length) return h('li', {}, target, label);
    return h('li', {}, h('details', { open: node.level === 1 && toc.length < 12 },
      h('summary', {}, target, label),
      h('ul', {}, node.children.map(entry))));
  };
  const nav = h('nav', { class: 'toc', id: 'toc', 'aria-label': 'Contents' });
  const toggle = h('button', {
    type: 'button', class: 'quiet toc-toggle', 'aria-expanded': 'false', 'aria-controls': 'toc',
    onclick: () => {
      const collapsed = nav.classList.toggle('collapsed');
      toggle.setAttribute('aria-expanded', String(!collapsed));
    },
  }, 'Contents');
  nav.classList.add('collapsed');
  append(nav, toggle,
    h('h2', {}, h('a', { href: link(['book', book.id]) }, book.title)),
    toc.length ? h('ul', {}, toc.map(entry)) : h('p', { class: 'muted' }, 'This book has no table of contents.'));
  return nav;
}

function goToLabelForm(book, signal) {
  const input = h('input', { id: 'goto-label', size: 6, placeholder: 'xiv', 'aria-describedby': 'goto-error' });
  const error = h('span', { class: 'error', id: 'goto-error', role: 'alert' });
  return h('form', {
    class: 'row', id: 'goto',
    onsubmit: async (event) => {
      event.preventDefault();
      const wanted = input.value.trim().replace(/^p(age)?\.?\s*/i, '');
      if (!wanted) return;
      try {
        const page = await api(`books/${book.id}/labels/${encodeURIComponent(wanted)}`, { signal });
        location.hash = link(['book', book.id, 'page', String(page.number)]);
      } catch (failure) {
        error.textContent = failure.status === 404 ? `No page is printed “${wanted}”.` : failure.message;
      }
    },
  },
  h('div', { class: 'field' }, h('label', { for: 'goto-label' }, 'Go to printed page'), input),
  h('button', { type: 'submit', class: 'quiet' }, 'Go'), error);
}

function bookSearchForm(book) {
  const input = h('input', { id: 'book-search', type: 'search', required: true });
  return h('form', {
    class: 'row', role: 'search',
    onsubmit: (event) => {
      event.preventDefault();
      if (input.value.trim()) location.hash = link(['search'], { q: input.value.trim(), book: book.id });
    },
  },
  h('div', { class: 'field' }, h('label', { for: 'book-search' }, 'Search this book'), input),
  h('button', { type: 'submit', class: 'quiet' }, 'Search'));
}

async function showBook(main, id, query, signal) {
  const { book, toc } = await bookData(id, signal);
  const [quality, index] = await Promise.all([
    api(`books/${id}/quality`, { signal }).catch(() => null),
    api(`books/${id}/index`, { signal }).catch(() => []),
  ]);
  const content = h('div', { class: 'content' },
    h('h1', {}, book.title),
    h('p', { class: 'muted' }, [book.author, book.page_count ? plural(book.page_count, 'page') : null,
      STATUS_WORDS[book.status] || book.status].filter(Boolean).join(' · ')),
    h('div', { class: 'row' }, goToLabelForm(book, signal), bookSearchForm(book)),
    qualitySection(quality),
    indexBrowser(book, index, query.get('term') || ''));
  replace(main, h('div', { class: 'book' }, tocSidebar(book, toc, null), content));
  focusHeading(main);
}

function qualitySection(quality) {
  if (!quality || !quality.gates.length) return h('p', { class: 'muted' }, 'No quality gates yet: the book has not been processed.');
  return h('section', { 'aria-labelledby': 'quality-heading' },
    h('h2', { id: 'quality-heading' }, quality.passed ? 'Quality: every gate passed' : 'Quality: needs review'),
    h('ul', { class: 'gates' }, quality.gates.map((gate) => h('li', { class: gate.passed ? 'passed' : 'failed' },
      h('span', { class: 'visually-hidden' }, gate.passed ? 'Passed: ' : 'Failed: '),
      `${GATE_WORDS[gate.gate] || words(gate.gate)}: ${gate.detail || `${gate.metric} (threshold ${gate.threshold})`}`))));
}

function letterOf(term) {
  const first = normalise(term).charAt(0).toUpperCase();
  return /\p{L}/u.test(first) ? first : '#';
}

function anchorOf(term, indexName) {
  return `entry-${indexName}-${normalise(term)}`.replace(/[^\p{L}\p{N}-]+/gu, '-');
}

function indexBrowser(book, entries, initialFilter) {
  const section = h('section', { class: 'index', 'aria-labelledby': 'index-heading' });
  const heading = h('h2', { id: 'index-heading' }, 'Index');
  if (!entries.length) return append(section, heading, h('p', { class: 'muted' }, 'This book has no back-of-book index.'));
  const filter = h('input', { id: 'index-filter', type: 'search', value: initialFilter });
  const list = h('div', { id: 'index-entries' });
  const names = [...new Set(entries.map((entry) => entry.index_name))];
  const byTerm = new Map();

  const locators = (entry) => {
    if (entry.pages.length) {
      return h('span', { class: 'locators' }, entry.pages.map((range) => {
        const printed = range.first_label && range.last_label && range.last_page !== range.first_page
          ? `${range.first_label}–${range.last_label}` : (range.first_label || String(range.first_page));
        return h('a', { href: link(['book', book.id, 'page', String(range.first_page)], { q: entry.term }) }, printed);
      }));
    }
    return entry.printed_pages.length ? h('span', { class: 'muted' }, entry.printed_pages.join(', ')) : null;
  };

  const reference = (kind, targets, indexName) => targets.length ? h('span', { class: 'refs' }, ` ${kind} `,
    targets.map((target, position) => [position ? '; ' : '', h('button', {
      type: 'button', class: 'link',
      onclick: () => jumpTo(target, indexName),
    }, target)])) : null;

  const item = (entry, depth) => {
    const element = h('li', { class: 'entry', id: depth === 0 ? anchorOf(entry.term, entry.index_name) : false },
      h('span', { class: 'term' }, entry.term), ' ', locators(entry),
      reference('see', entry.see, entry.index_name), reference('see also', entry.see_also, entry.index_name),
      entry.subentries.length ? h('ul', {}, entry.subentries.map((sub) => item({ ...sub, index_name: entry.index_name }, depth + 1))) : null);
    if (depth === 0) byTerm.set(`${entry.index_name}\u0000${normalise(entry.term)}`, element);
    return element;
  };

  const jumpTo = (target, indexName) => {
    // "see X, sub-entry" names the top entry first.
    const head = normalise(target.split(/[,:;]/)[0]);
    if (filter.value) {
      filter.value = '';
      draw();
    }
    const element = byTerm.get(`${indexName}\u0000${head}`) || [...byTerm.entries()].find(([key]) => key.endsWith(`\u0000${head}`))?.[1];
    if (element) {
      element.setAttribute('tabindex', '-1');
      element.scrollIntoView({ block: 'center' });
      element.focus();
    } else {
      filter.value = target;
      draw();
      announce(`No entry “${target}”: showing entries that contain it`);
    }
  };

  const matches = (entry, text) => entry.term.toLowerCase().includes(text) || entry.subentries.some((sub) => matches(sub, text));

  const draw = () => {
    const text = filter.value.trim().toLowerCase();
    byTerm.clear();
    const groups = [];
    for (const name of names) {
      const shown = entries.filter((entry) => entry.index_name === name && (!text || matches(entry, text)));
      const grouped = new Map();
      for (const entry of shown) {
        const letter = letterOf(entry.term);
        if (!grouped.has(letter)) grouped.set(letter, []);
        grouped.get(letter).push(entry);
      }
      // Symbols first, then the alphabet; entries keep the book's order within a letter.
      const letters = new Map([...grouped.entries()].sort(([a], [b]) => (a === '#' ? -1 : b === '#' ? 1 : a.localeCompare(b))));
      const letterId = (letter) => `letter-${anchorOf(letter, name)}`;
      groups.push(
        names.length > 1 ? h('h3', {}, name) : null,
        h('nav', { class: 'letters', 'aria-label': `${name}: letters` }, [...letters.keys()].map((letter) => h('button', {
          type: 'button', class: 'quiet',
          onclick: () => {
            const target = document.getElementById(letterId(letter));
            target.scrollIntoView();
            target.focus();
          },
        }, letter))),
        shown.length ? [...letters.entries()].map(([letter, group]) => [
          h('h3', { id: letterId(letter), tabindex: '-1' }, letter),
          h('ul', {}, group.map((entry) => item(entry, 0)))]) : h('p', { class: 'muted' }, 'No entry matches.'));
    }
    replace(list, groups);
  };
  filter.addEventListener('input', draw);
  draw();
  return append(section, heading,
    h('div', { class: 'field' }, h('label', { for: 'index-filter' }, 'Find in the index'), filter),
    list);
}

// ---------------------------------------------------------------------------------------
// A page: image with the hit marked, text, breadcrumbs, index terms

async function showPage(main, id, number, query, signal) {
  const { book, toc } = await bookData(id, signal);
  const page = await api(`books/${id}/pages/${number}`, { signal });
  const hit = query.get('q') || '';
  const total = book.page_count || number;
  const pageLink = (n, text, rel) => h('a', { href: link(['book', id, 'page', String(n)], hit ? { q: hit } : null), rel }, text);
  const sheet = h('div', { class: 'sheet', id: 'page-sheet' });
  const spread = h('div', { class: 'spread' },
    h('figure', { class: 'figure' }, sheet, h('figcaption', { class: 'visually-hidden' }, `Image of ${pageLabel(page.label, number)}`)),
    h('section', { 'aria-labelledby': 'text-heading' },
      h('h2', { id: 'text-heading' }, 'Text'),
      h('pre', { class: 'page-text', id: 'page-text', tabindex: '0' }, markedText(page.text, queryTerms(hit)))));
  const terms = page.index_terms.length ? h('section', { 'aria-labelledby': 'terms-heading' },
    h('h2', { id: 'terms-heading' }, 'Index terms on this page'),
    h('ul', { id: 'page-terms' }, page.index_terms.map((term) => h('li', {}, h('a', { href: link(['book', id], { term }) }, term))))) : null;
  const content = h('div', { class: 'content' },
    h('nav', { class: 'crumbs', 'aria-label': 'Section' }, h('ol', {},
      h('li', {}, h('a', { href: link(['book', id]) }, book.title)),
      page.section_path.map((title) => h('li', {}, title)))),
    h('h1', {}, `${pageLabel(page.label, number)}`, h('span', { class: 'muted' }, ` · page ${number} of ${total}`)),
    h('div', { class: 'pager' },
      number > 1 ? pageLink(number - 1, '← Previous page', 'prev') : null,
      number < total ? pageLink(number + 1, 'Next page →', 'next') : null,
      goToLabelForm(book, signal)),
    hit ? h('p', { class: 'notice', id: 'hit-notice' }, `Marked: “${hit}”`) : null,
    spread, terms);
  replace(main, h('div', { class: 'book' }, tocSidebar(book, toc, number), content));
  focusHeading(main);
  await drawPageImage(sheet, id, number, page, hit, signal);
}

async function drawPageImage(sheet, id, number, page, hit, signal) {
  let blob;
  try {
    blob = await apiBlob(`books/${id}/pages/${number}/image`, signal);
  } catch (error) {
    if (error.name === 'AbortError') return;
    replace(sheet, h('p', { class: 'muted', id: 'no-image' }, `No page image: ${error.message}`));
    return;
  }
  const url = URL.createObjectURL(blob);
  signal.addEventListener('abort', () => URL.revokeObjectURL(url));
  const image = h('img', { id: 'page-image', src: url, alt: `${pageLabel(page.label, number)}: the page as printed (its text is beside it)` });
  replace(sheet, image);
  await image.decode().catch(() => {});
  if (!hit) return;
  try {
    const located = await api(`books/${id}/pages/${number}/words`, { signal });
    const boxes = hitBoxes(located.words, hit);
    for (const box of boxes) {
      const mark = h('div', { class: 'hit', 'data-word': box.text });
      // Fractions of the page: the marks scale with the image.
      mark.style.left = `${box.x0 * 100}%`;
      mark.style.top = `${box.y0 * 100}%`;
      mark.style.width = `${(box.x1 - box.x0) * 100}%`;
      mark.style.height = `${(box.y1 - box.y0) * 100}%`;
      sheet.append(mark);
    }
    const first = sheet.querySelector('.hit');
    if (first) first.scrollIntoView({ block: 'center' });
    const notice = document.getElementById('hit-notice');
    if (notice) notice.textContent = boxes.length ? `Marked on the page: “${hit}” (${plural(boxes.length, 'word')})` : `“${hit}” is not printed on this page as such.`;
  } catch (error) {
    if (error.name !== 'AbortError') sheet.append(h('p', { class: 'muted' }, `The hit cannot be marked: ${error.message}`));
  }
}

// ---------------------------------------------------------------------------------------
// Search

async function bookOptions(signal, selected) {
  const books = await api('books/', { query: { limit: 1000 }, signal });
  return {
    books,
    select: h('select', { id: 'search-book', name: 'book' },
      h('option', { value: '' }, 'Every book'),
      books.map((book) => h('option', { value: book.id, selected: book.id === selected }, book.title))),
  };
}

async function showSearch(main, query, signal) {
  const q = query.get('q') || '';
  const mode = query.get('mode') || 'hybrid';
  const { books, select } = await bookOptions(signal, query.get('book') || '');
  const titles = new Map(books.map((book) => [book.id, book.title]));
  const input = h('input', { id: 'search-q', type: 'search', value: q, required: true, maxlength: 1000 });
  const modes = h('fieldset', { class: 'row' }, h('legend', {}, 'Mode'),
    ['keyword', 'semantic', 'hybrid'].map((name) => h('label', {},
      h('input', { type: 'radio', name: 'mode', value: name, checked: name === mode }), ` ${name}`)));
  const form = h('form', {
    role: 'search', id: 'search',
    onsubmit: (event) => {
      event.preventDefault();
      const chosen = form.querySelector('input[name=mode]:checked');
      location.hash = link(['search'], { q: input.value.trim(), mode: chosen ? chosen.value : 'hybrid', book: select.value });
    },
  },
  h('div', { class: 'row' },
    h('div', { class: 'field' }, h('label', { for: 'search-q' }, 'Search for'), input),
    h('div', { class: 'field' }, h('label', { for: 'search-book' }, 'In'), select),
    h('button', { type: 'submit' }, 'Search')),
  modes);
  const results = h('section', { id: 'search-results', 'aria-live': 'polite' });
  replace(main, h('h1', {}, 'Search'), form, results);
  focusHeading(main);
  if (!q) return;
  replace(results, h('p', { class: 'muted' }, 'Searching…'));
  const answer = await api('search', { query: { q, mode, book_id: select.value, k: 20 }, signal });
  replace(results,
    h('h2', {}, answer.results.length ? plural(answer.results.length, 'page') : 'Nothing found'),
    h('ol', { class: 'hits', id: 'hits' }, answer.results.map((result) => h('li', {},
      h('a', { href: link(['book', result.book_id, 'page', String(result.page)], { q }), class: 'hit-link' },
        `${titles.get(result.book_id) || 'A book'}, ${pageLabel(result.page_label, result.page)}`),
      result.section_path.length ? h('div', { class: 'where' }, result.section_path.join(' › ')) : null,
      result.snippet ? h('div', { class: 'snippet' }, snippetNodes(result.snippet)) : null))));
}

// ---------------------------------------------------------------------------------------
// Ask

async function showAsk(main, query, signal) {
  const { select } = await bookOptions(signal, query.get('book') || '');
  select.id = 'ask-book';
  const question = h('textarea', { id: 'ask-q', rows: 3, required: true, maxlength: 4000 });
  const result = h('section', { id: 'answer', 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit' }, 'Ask');
  const form = h('form', {
    id: 'ask',
    onsubmit: async (event) => {
      event.preventDefault();
      if (!question.value.trim()) return;
      submit.disabled = true;
      replace(result, h('p', { class: 'muted' }, 'Reading the books…'));
      try {
        const answer = await api('query', { method: 'POST', json: { query: question.value.trim(), book_id: select.value || null }, signal });
        drawAnswer(result, answer);
      } catch (error) {
        if (error.name !== 'AbortError') replace(result, h('p', { class: 'notice bad', role: 'alert' }, error.message));
      } finally {
        submit.disabled = false;
      }
    },
  },
  h('div', { class: 'field' }, h('label', { for: 'ask-q' }, 'Your question'), question),
  h('div', { class: 'row' }, h('div', { class: 'field' }, h('label', { for: 'ask-book' }, 'From'), select), submit));
  replace(main, h('h1', {}, 'Ask the books'),
    session.can('write') ? form : h('p', { class: 'notice' }, 'Asking needs a write key: this key may read only.'),
    result);
  focusHeading(main);
}

function drawAnswer(result, answer) {
  const bookOfChunk = new Map(answer.retrieved.map((chunk) => [chunk.chunk_id, chunk.book_id]));
  if (!answer.answer) {
    replace(result, h('h2', {}, 'No answer'), h('p', { class: 'notice', id: 'fallback' }, answer.fallback_message || 'The books do not answer this.'));
    return;
  }
  replace(result,
    h('h2', {}, 'Answer'),
    h('p', { id: 'answer-summary' }, answer.answer.answer_summary),
    h('h3', {}, 'From the pages'),
    h('ol', { class: 'claims', id: 'claims' }, answer.answer.claims.map((claim) => {
      const book = bookOfChunk.get(claim.source_chunk_id);
      return h('li', {}, claim.text, ' ',
        book ? h('a', { href: link(['book', book, 'page', String(claim.page_number)]), class: 'citation' }, `(p. ${claim.page_label})`) : `(p. ${claim.page_label})`);
    })),
    h('p', { class: 'muted' }, `Confidence ${Math.round(answer.answer.confidence_score * 100)}%${answer.model ? ` · ${answer.model}` : ''}`));
}

// ---------------------------------------------------------------------------------------
// Admin: knobs, API keys, dead-letter queue

async function showAdmin(main, signal) {
  if (!session.can('admin')) {
    replace(main, h('h1', {}, 'Admin'), h('p', { class: 'notice bad', id: 'not-admin' }, 'This page needs an admin key.'));
    focusHeading(main);
    return;
  }
  const [config, document_, keys, dead] = await Promise.all([
    api('config', { signal }),
    fetch(apiUrl('openapi.json'), { signal }).then((response) => response.json()),
    api('keys', { signal }),
    api('dlq', { signal }),
  ]);
  const schema = document_.components.schemas.Config;
  replace(main, h('h1', {}, 'Admin'),
    configForm(config, schema),
    keysSection(keys),
    dlqSection(dead));
  focusHeading(main);
}

function configForm(config, schema) {
  const inputs = new Map();
  const message = h('p', { role: 'status', id: 'config-message' });
  const fields = Object.entries(schema.properties).map(([name, property]) => {
    const id = `knob-${name}`;
    const error = h('span', { class: 'error', id: `${id}-error` });
    const hint = [property.description, property.minimum !== undefined ? `${property.minimum} to ${property.maximum}` : null].filter(Boolean).join(' · ');
    const input = property.type === 'boolean'
      ? h('input', { id, type: 'checkbox', checked: !!config[name], 'aria-describedby': `${id}-hint ${id}-error` })
      : h('input', {
        id, type: 'number', value: String(config[name]), step: property.type === 'integer' ? '1' : 'any',
        min: property.minimum, max: property.maximum, 'aria-describedby': `${id}-hint ${id}-error`,
      });
    inputs.set(name, { input, error, property });
    return h('div', { class: 'field' }, h('label', { for: id }, words(name)), h('span', { class: 'hint', id: `${id}-hint` }, hint), input, error);
  });
  const form = h('form', {
    id: 'config', novalidate: true,
    onsubmit: async (event) => {
      event.preventDefault();
      const changes = {};
      for (const [name, { input, error, property }] of inputs) {
        error.textContent = '';
        input.removeAttribute('aria-invalid');
        const value = property.type === 'boolean' ? input.checked : Number(input.value);
        if (input.type === 'number' && input.value.trim() === '') changes[name] = input.value;
        else if (value !== config[name]) changes[name] = value;
      }
      if (!Object.keys(changes).length) {
        message.textContent = 'Nothing changed.';
        return;
      }
      try {
        const updated = await api('config', { method: 'PUT', json: changes });
        Object.assign(config, updated);
        message.textContent = `Saved: ${Object.keys(changes).map(words).join(', ')}.`;
      } catch (error) {
        message.textContent = 'Not saved: see the marked knobs.';
        let first = null;
        for (const issue of Array.isArray(error.detail) ? error.detail : []) {
          const field = inputs.get((issue.loc || [])[1]);
          if (!field) continue;
          field.error.textContent = issue.msg;
          field.input.setAttribute('aria-invalid', 'true');
          first = first || field.input;
        }
        if (first) first.focus();
        else message.textContent = `Not saved: ${error.message}`;
      }
    },
  },
  h('h2', {}, 'Live settings'),
  h('p', { class: 'muted' }, 'They take effect on every replica within seconds.'),
  fields, h('button', { type: 'submit' }, 'Save settings'), message);
  return form;
}

function keysSection(initial) {
  let keys = initial;
  const body = h('tbody', { id: 'key-rows' });
  const shown = h('div', { id: 'new-key' });
  const draw = () => replace(body, keys.map((key) => h('tr', {},
    h('td', {}, key.name), h('td', {}, key.scope), h('td', {}, h('code', {}, key.prefix)),
    h('td', { class: 'hide-narrow' }, key.last_used_at ? new Date(key.last_used_at).toLocaleString() : 'never'),
    h('td', {}, h('button', {
      type: 'button', class: 'danger',
      onclick: async () => {
        if (!window.confirm(`Revoke the key “${key.name}”? Requests with it will be refused.`)) return;
        await api(`keys/${key.id}`, { method: 'DELETE' });
        keys = keys.filter((other) => other.id !== key.id);
        draw();
        announce(`Key ${key.name} revoked`);
      },
    }, 'Revoke')))));
  const name = h('input', { id: 'key-name', required: true, maxlength: 100 });
  const scope = h('select', { id: 'key-scope' }, SCOPES.map((value) => h('option', { value }, value)));
  const error = h('p', { class: 'error', role: 'alert' });
  const form = h('form', {
    class: 'row', id: 'key-create',
    onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = '';
      try {
        const made = await api('keys', { method: 'POST', json: { name: name.value.trim(), scope: scope.value } });
        const { key, ...details } = made;
        keys = [...keys, details];
        draw();
        form.reset();
        replace(shown, h('div', { class: 'notice' },
          h('label', { for: 'new-key-value' }, `The new key “${details.name}”: copy it now, it is shown this once`),
          h('input', { id: 'new-key-value', class: 'newkey', readonly: true, value: key })));
        document.getElementById('new-key-value').select();
      } catch (failure) {
        error.textContent = failure.message;
      }
    },
  },
  h('div', { class: 'field' }, h('label', { for: 'key-name' }, 'Name'), name),
  h('div', { class: 'field' }, h('label', { for: 'key-scope' }, 'Scope'), scope),
  h('button', { type: 'submit' }, 'Make a key'), error);
  draw();
  return h('section', { 'aria-labelledby': 'keys-heading' },
    h('h2', { id: 'keys-heading' }, 'API keys'), form, shown,
    h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Scope', 'Prefix', 'Last used', ''].map((title, position) => h('th', { scope: 'col', class: position === 3 ? 'hide-narrow' : false }, title)))), body));
}

function dlqSection(initial) {
  let jobs = initial;
  const list = h('ul', { id: 'dlq' });
  const draw = () => replace(list, jobs.length ? jobs.map((job) => h('li', {},
    h('a', { href: link(['book', job.book_id]) }, `Job ${job.id.slice(0, 8)}…`), ` · ${job.error_stage ? words(job.error_stage) : 'unknown stage'}: `,
    h('span', { class: 'error' }, job.error || 'no error recorded'), ' ',
    h('button', {
      type: 'button', class: 'quiet',
      onclick: async () => {
        await api(`dlq/${job.id}/requeue`, { method: 'POST' });
        jobs = jobs.filter((other) => other.id !== job.id);
        draw();
        announce('Queued again');
      },
    }, 'Requeue'), ' ',
    h('button', {
      type: 'button', class: 'danger',
      onclick: async () => {
        if (!window.confirm('Drop this job without running it?')) return;
        await api(`dlq/${job.id}`, { method: 'DELETE' });
        jobs = jobs.filter((other) => other.id !== job.id);
        draw();
      },
    }, 'Discard'))) : h('li', { class: 'muted' }, 'No dead jobs.'));
  draw();
  return h('section', { 'aria-labelledby': 'dlq-heading' }, h('h2', { id: 'dlq-heading' }, 'Dead-letter queue'), list);
}

// ---------------------------------------------------------------------------------------

document.getElementById('sign-out').addEventListener('click', () => signOut('Signed out.'));
document.getElementById('skip').addEventListener('click', () => document.getElementById('main').focus());
window.addEventListener('hashchange', route);
route();
