// ollama-client.cjs HOST LOCAL_MODEL — drives a running hedge with the
// official Ollama JavaScript client (npm package ollama, on NODE_PATH) the
// way Open WebUI and Home Assistant use Ollama's API; exits non-zero at the
// first answer that is not what a client needs. Run by
// TestOllamaClient (ollama_client_test.go).
'use strict';
const assert = require('node:assert/strict');
const { Ollama } = require('ollama');

const [host, local] = process.argv.slice(2);
const ollama = new Ollama({ host });

// collect reads a streamed reply: its text and its final chunk.
async function collect(stream, part) {
  let text = '';
  let last;
  for await (const chunk of stream) {
    assert.equal(typeof chunk.created_at, 'string');
    text += part(chunk);
    last = chunk;
  }
  assert.ok(last && last.done, 'the stream ends with done');
  return { text, last };
}

function step(name) {
  console.log('ok ' + name);
}

async function main() {
  const version = await ollama.version();
  assert.match(version.version, /^\d+\.\d+\.\d+$/);
  step('version');

  const tags = await ollama.list();
  const names = tags.models.map((m) => m.name);
  for (const want of ['hedge-auto:latest', 'hedge-local:latest', 'hedge-cloud:latest', local + ':latest']) {
    assert.ok(names.includes(want), `list has ${want}: ${names}`);
  }
  const gguf = tags.models.find((m) => m.name === local + ':latest');
  assert.equal(gguf.details.format, 'gguf');
  assert.ok(gguf.size > 0);
  step('list');

  const shown = await ollama.show({ model: 'hedge-local' });
  assert.ok(Array.isArray(shown.capabilities));
  step('show');

  // Not streamed, on the local LLM.
  const one = await ollama.chat({ model: 'hedge-local', messages: [{ role: 'user', content: 'tell me a story' }] });
  assert.equal(one.message.role, 'assistant');
  assert.ok(one.message.content.length > 0);
  assert.ok(one.done);
  assert.ok(['stop', 'length'].includes(one.done_reason));
  assert.equal(one.hedge.tier, 'llm');
  assert.ok(one.eval_count > 0 && one.prompt_eval_count > 0 && one.total_duration > 0);
  step('chat');

  // Streamed, a conversation with its history.
  const st = await collect(
    await ollama.chat({
      model: local,
      stream: true,
      messages: [
        { role: 'system', content: 'You tell short stories.' },
        { role: 'user', content: 'tell me a story' },
        { role: 'assistant', content: one.message.content },
        { role: 'user', content: 'and another story' },
      ],
    }),
    (c) => c.message.content,
  );
  assert.ok(st.text.length > 0);
  assert.ok(st.last.eval_count > 0);
  step('chat stream with history');

  // An intent the SLM answers: no token counts.
  const slm = await ollama.chat({ model: 'hedge-auto', messages: [{ role: 'user', content: 'what time is it' }] });
  assert.equal(slm.hedge.tier, 'slm');
  assert.equal(slm.eval_count, undefined);
  step('chat on the SLM');

  const gen = await ollama.generate({ model: 'hedge-local', prompt: 'tell me a story', options: { num_predict: 3 } });
  assert.ok(gen.response.length > 0);
  assert.equal(gen.done_reason, 'length');
  assert.ok(gen.eval_count <= 3);
  const gst = await collect(await ollama.generate({ model: 'hedge-local', prompt: 'once upon a time', stream: true }), (c) => c.response);
  assert.ok(gst.text.length > 0);
  step('generate');

  const js = await ollama.chat({ model: 'hedge-local', format: 'json', messages: [{ role: 'user', content: 'tell me a story as JSON' }] });
  JSON.parse(js.message.content); // throws when it is not JSON
  assert.ok(['json', 'wrapped'].includes(js.hedge.format));
  const jg = await ollama.generate({ model: 'hedge-local', format: { type: 'object' }, prompt: 'a story as JSON', stream: false });
  JSON.parse(jg.response);
  step('format json');

  // Unload, as Open WebUI's unload button does, then load again.
  const un = await ollama.generate({ model: local, prompt: '', keep_alive: 0 });
  assert.equal(un.done_reason, 'unload');
  assert.ok(!(await ollama.ps()).models.some((m) => m.name === local + ':latest'), 'ps after unload');
  const ld = await ollama.generate({ model: local, prompt: '' });
  assert.equal(ld.done_reason, 'load');
  assert.ok((await ollama.ps()).models.some((m) => m.name === local + ':latest'), 'ps after load');
  step('unload and load');

  // Home Assistant's sequence: tags, then a streamed chat offering tools,
  // then the same chat with the assistant's tool call and the tool's result.
  await ollama.list();
  const tools = [{
    type: 'function',
    function: {
      name: 'HassTurnOn',
      description: 'Turns on a device',
      parameters: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] },
    },
  }];
  const history = [
    { role: 'system', content: 'You are a voice assistant for Home Assistant.' },
    { role: 'user', content: 'turn on the kitchen light' },
  ];
  const ha = { model: 'hedge-auto', stream: true, tools, keep_alive: -1, options: { num_ctx: 8192 } };
  const first = await collect(await ollama.chat({ ...ha, messages: history }), (c) => c.message.content);
  assert.ok(first.text.length > 0, 'HA: first answer');
  const second = await collect(
    await ollama.chat({
      ...ha,
      messages: [
        ...history,
        { role: 'assistant', content: first.text, tool_calls: [{ function: { name: 'HassTurnOn', arguments: { name: 'kitchen light' } } }] },
        { role: 'tool', content: JSON.stringify({ success: true }), tool_name: 'HassTurnOn' },
      ],
    }),
    (c) => c.message.content,
  );
  assert.ok(second.text.length > 0, 'HA: answer after the tool result');
  step('home assistant sequence');

  // Errors reach the client as Ollama's: a ResponseError with the status.
  await assert.rejects(ollama.chat({ model: 'llama3', messages: [{ role: 'user', content: 'hi' }] }), (e) => {
    assert.equal(e.name, 'ResponseError');
    assert.equal(e.status_code, 404);
    assert.match(e.error, /not found/);
    return true;
  });
  await assert.rejects(ollama.pull({ model: 'no-such-model' }), (e) => e.status_code === 404);
  const pulled = await ollama.pull({ model: 'hedge-auto' });
  assert.equal(pulled.status, 'success');
  step('errors');
}

main().then(
  () => console.log('all ok'),
  (err) => {
    console.error(err && err.stack ? err.stack : err);
    process.exit(1);
  },
);
