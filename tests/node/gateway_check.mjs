// The official `openai` Node.js SDK against the costlens gateway and against the upstream directly.
// Usage: node gateway_check.mjs <gateway base URL> <direct base URL>
// Prints one JSON object: for each side, the raw bytes of a chat completion and of a chat stream,
// and what the SDK parsed from them. tests/test_server_gateway.py compares the two sides.
import OpenAI from "openai";

const messages = [{ role: "user", content: "Hello from Node" }];

async function run(base) {
  const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "node-client-key", maxRetries: 0 });
  const request = { model: "gpt-4o-mini", messages, max_tokens: 12 };

  const chatRaw = await (await client.chat.completions.create(request).asResponse()).text();
  const chat = await client.chat.completions.create(request);

  const streamRaw = await (await client.chat.completions.create({ ...request, stream: true }).asResponse()).text();
  const stream = await client.chat.completions.create({ ...request, stream: true });
  const deltas = [];
  let usageSeen = false;
  for await (const chunk of stream) {
    if (chunk.usage) usageSeen = true;
    for (const choice of chunk.choices) deltas.push(choice.delta?.content ?? "");
  }
  return {
    chat_raw: chatRaw,
    chat_text: chat.choices[0].message.content,
    chat_usage: chat.usage,
    stream_raw: streamRaw,
    stream_text: deltas.join(""),
    stream_chunks: deltas.length,
    stream_usage_seen: usageSeen,
  };
}

const [gateway, direct] = process.argv.slice(2);
if (!gateway || !direct) {
  console.error("usage: node gateway_check.mjs <gateway base URL> <direct base URL>");
  process.exit(2);
}
const out = { gateway: await run(gateway), direct: await run(direct) };
process.stdout.write(JSON.stringify(out));
