"""An MCP client on the official Python SDK (PyPI `mcp`) against HBI's MCP server: it
initialises, lists the tools and resources, calls each tool, reads a book and a page
resource, and makes the calls that must fail (bad arguments, an unknown book, a tool the key's
scope does not allow). Prints what it saw as one JSON object, for the test to check against
HBI's HTTP API.

Usage:
  mcp_client.py http URL API_KEY BOOK_ID
  mcp_client.py stdio HBI_BINARY API_KEY BOOK_ID   (the server's settings come from the environment)
"""

import asyncio
import json
import os
import sys

import httpx2
from mcp import Client, ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


def structured(result):
    """A tool result's structured content, or its error text."""
    if result.is_error:
        return {"error": " ".join(block.text for block in result.content if getattr(block, "text", None))}
    return result.structured_content


async def failure(session, tool, arguments):
    """How a call that must fail failed: a tool error result or a protocol error."""
    try:
        result = await session.call_tool(tool, arguments)
    except MCPError as err:
        return {"protocol_error": err.error.code, "message": err.error.message}
    if result.is_error:
        return {"tool_error": " ".join(block.text for block in result.content if getattr(block, "text", None))}
    return {"succeeded": structured(result)}


async def walk(session, book_id):
    init = await session.initialize()
    seen = {
        "protocol_version": init.protocol_version,
        "server": init.server_info.name,
        "instructions": init.instructions or "",
    }
    tools = await session.list_tools()
    seen["tools"] = sorted(tool.name for tool in tools.tools)
    seen["input_schemas"] = {tool.name: tool.input_schema for tool in tools.tools}

    seen["list_books"] = structured(await session.call_tool("list_books", {}))
    seen["toc"] = structured(await session.call_tool("toc", {"book_id": book_id}))
    seen["search"] = structured(
        await session.call_tool("search", {"query": "vector", "mode": "keyword", "book_id": book_id, "k": 5})
    )
    seen["index_lookup"] = structured(await session.call_tool("index_lookup", {"term": "vector", "book_id": book_id}))
    seen["index_lookup_everywhere"] = structured(await session.call_tool("index_lookup", {"term": "vector"}))
    first = seen["toc"]["entries"][0]
    seen["get_page"] = structured(await session.call_tool("get_page", {"book_id": book_id, "page": first["page"]}))
    seen["get_page_by_label"] = structured(
        await session.call_tool("get_page", {"book_id": book_id, "label": first["page_label"]})
    )
    seen["ask"] = structured(await session.call_tool("ask", {"question": "How do I assign a value to a vector?"}))

    resources = await session.list_resources()
    seen["resources"] = [resource.uri for resource in resources.resources]
    templates = await session.list_resource_templates()
    seen["resource_templates"] = [template.uri_template for template in templates.resource_templates]
    book = await session.read_resource(f"hbi://books/{book_id}")
    seen["book_resource"] = json.loads(book.contents[0].text)
    page = await session.read_resource(f"hbi://books/{book_id}/pages/{first['page']}")
    seen["page_resource"] = json.loads(page.contents[0].text)
    try:
        await session.read_resource("hbi://books/not-a-book")
        seen["missing_resource"] = "read"
    except MCPError as err:
        seen["missing_resource"] = err.error.code

    seen["failures"] = {
        "search_without_query": await failure(session, "search", {"mode": "keyword"}),
        "search_with_a_bad_mode": await failure(session, "search", {"query": "x", "mode": "telepathic"}),
        "toc_of_an_unknown_book": await failure(session, "toc", {"book_id": "0193e1a2-0000-7000-8000-000000000000"}),
        "get_page_out_of_range": await failure(session, "get_page", {"book_id": book_id, "page": 100000}),
        "get_page_with_neither": await failure(session, "get_page", {"book_id": book_id}),
        "unknown_tool": await failure(session, "teleport", {}),
    }
    return seen


async def modern(transport, book_id):
    """The SDK's own choice of revision (`auto`: the newest both sides speak, without the
    initialize handshake where the server offers that): the negotiated revision and one call."""
    async with Client(transport, mode="auto") as client:
        result = await client.call_tool("toc", {"book_id": book_id})
        return {"protocol_version": client.protocol_version, "toc": structured(result)}


async def over_http(url, key, book_id):
    async with httpx2.AsyncClient(headers={"X-API-Key": key}, timeout=60) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                seen = await walk(session, book_id)
        seen["auto"] = await modern(streamable_http_client(url, http_client=http), book_id)
    return seen


async def over_stdio(binary, key, book_id):
    env = dict(os.environ)
    env["HBI_API_KEY"] = key
    params = StdioServerParameters(command=binary, args=["mcp"], env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            return await walk(session, book_id)


def main():
    transport, target, key, book_id = sys.argv[1:5]
    run = over_http if transport == "http" else over_stdio
    print(json.dumps(asyncio.run(run(target, key, book_id))))


if __name__ == "__main__":
    main()
