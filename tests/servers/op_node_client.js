// Drives npm @1password/connect against op_connect_server.py.
// Usage: node op_node_client.js '{"url":URL,"token":T,"ops":[{"op":"vault_by_title",
//        "title":...},{"op":"list_items","vault":ID},{"op":"get_item","vault":ID,"item":ID},
//        {"op":"get_item_by_title","vault":ID,"title":...}]}'
// Prints {"results":[...]}: each result is {ok, ...} or {error:{status, message}}.
// Needs NODE_EXTRA_CA_CERTS for the test CA.
'use strict';
const path = require('path');
const modules = path.join(__dirname, '..', 'node', 'node_modules');
const {OnePasswordConnect} = require(path.join(modules, '@1password/connect'));

async function main() {
  const a = JSON.parse(process.argv[2]);
  const op = OnePasswordConnect({serverURL: a.url, token: a.token, keepAlive: false});
  const results = [];
  for (const o of a.ops) {
    try {
      if (o.op === 'vault_by_title') {
        const vs = await op.listVaultsByTitle(o.title);
        results.push({ok: true, vaults: vs.map((v) => ({id: v.id, name: v.name}))});
      } else if (o.op === 'get_vault') {
        const v = await op.getVault(o.vault);
        results.push({ok: true, id: v.id, name: v.name});
      } else if (o.op === 'list_items') {
        const items = await op.listItems(o.vault);
        results.push({ok: true, items: items.map((i) => ({id: i.id, title: i.title,
                                                         version: i.version}))});
      } else if (o.op === 'get_item' || o.op === 'get_item_by_title') {
        const it = o.op === 'get_item' ? await op.getItemById(o.vault, o.item)
                                       : await op.getItemByTitle(o.vault, o.title);
        results.push({ok: true, id: it.id, title: it.title, version: it.version,
                      sections: (it.sections || []).map((s) => ({id: s.id, label: s.label})),
                      fields: (it.fields || []).map((f) => ({
                        id: f.id, label: f.label === undefined ? null : f.label,
                        value: f.value === undefined ? null : f.value,
                        section: f.section ? f.section.id : null}))});
      } else {
        throw new Error('unknown op ' + o.op);
      }
    } catch (e) {
      results.push({error: {status: e.status || (e.response && e.response.status) || null,
                            message: String(e.message || e)}});
    }
  }
  process.stdout.write(JSON.stringify({results}) + '\n');
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
