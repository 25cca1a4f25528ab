"""README's walk-through through the Python client that openapi-python-client generates from
/openapi.json: create a book, upload its PDF, follow the job, read the ToC, the index and a
page, search. Every answer is parsed into the client's own models (an answer the document
does not describe raises). Prints what it read as one JSON object, for the test to check
against the API's own answers.

Usage: walk_through.py BASE_URL API_KEY BOOK_PDF
"""

import json
import sys
import time

from hbi_hybrid_book_index_client import AuthenticatedClient
from hbi_hybrid_book_index_client.api.books import create_book, get_index, get_page, get_toc, upload_book
from hbi_hybrid_book_index_client.api.jobs import get_job
from hbi_hybrid_book_index_client.api.search import search
from hbi_hybrid_book_index_client.models import (
    Book,
    BookCreate,
    JobView,
    PageView,
    SearchMode,
    SearchResults,
    UploadAccepted,
    UploadBookBody,
)
from hbi_hybrid_book_index_client.types import File

FINAL_STATES = {"succeeded", "dead", "cancelled"}


def expect(value, kind):
    """The value, if the client parsed the answer into `kind`; otherwise the walk stops here."""
    if not isinstance(value, kind):
        sys.exit(f"expected a {kind.__name__}, got {value!r}")
    return value


def main():
    base_url, key, pdf = sys.argv[1:4]
    client = AuthenticatedClient(base_url=base_url, token=key, raise_on_unexpected_status=True)

    # 1. create a book
    book = expect(
        create_book.sync(client=client, body=BookCreate(title="An Introduction to R", author="R Core Team")),
        Book,
    )
    # 2. upload its PDF
    with open(pdf, "rb") as payload:
        body = UploadBookBody(file=File(payload=payload, file_name="R-intro.pdf", mime_type="application/pdf"))
        accepted = expect(upload_book.sync(book.id, client=client, body=body), UploadAccepted)
    # 3. follow the job
    deadline = time.monotonic() + 240
    while True:
        job = expect(get_job.sync(accepted.job_id, client=client), JobView)
        if job.state in FINAL_STATES or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # 4. read the structure
    toc = get_toc.sync(book.id, client=client)
    index = get_index.sync(book.id, client=client, q="vector")
    first_chapter = toc[0]
    page = expect(get_page.sync(book.id, first_chapter.page_number, client=client), PageView)
    # 5. search
    results = expect(
        search.sync(client=client, q="vector", mode=SearchMode.KEYWORD, book_id=book.id, k=5),
        SearchResults,
    )

    print(
        json.dumps(
            {
                "book_id": book.id,
                "job_id": accepted.job_id,
                "job_state": job.state,
                "pages_done": job.progress.done,
                "toc_titles": [node.title for node in toc],
                "first_chapter_page": first_chapter.page_number,
                "index_terms": [entry.term for entry in index],
                "page_label": page.label,
                "page_section_path": page.section_path,
                "search_pages": [hit.page for hit in results.results],
            }
        )
    )


if __name__ == "__main__":
    main()
