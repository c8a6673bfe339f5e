// The Azure SDK for JavaScript, unmodified, against a Strongroom ephemeral server: everything
// comes from the environment `strongroom serve --ephemeral --env-file F` writes (run with that
// file sourced; NODE_EXTRA_CA_CERTS makes Node trust the server's CA).
import { test } from "node:test";
import assert from "node:assert/strict";
import { ClientSecretCredential, DefaultAzureCredential } from "@azure/identity";
import { SecretClient } from "@azure/keyvault-secrets";

const vaultUrl = process.env.AZURE_KEYVAULT_URL;

// A credential built from what the ephemeral server's environment names.
function strongroomCredential() {
  return new ClientSecretCredential(
    process.env.STRONGROOM_TENANT_ID,
    process.env.AZURE_CLIENT_ID,
    process.env.AZURE_CLIENT_SECRET,
    { authorityHost: process.env.STRONGROOM_AUTHORITY, disableInstanceDiscovery: true },
  );
}

test("a credential built from the environment sets and reads a secret", async () => {
  const credential = strongroomCredential();
  const client = new SecretClient(vaultUrl, credential);
  const set = await client.setSecret("from-node", "hello", { tags: { lang: "js" } });
  assert.ok(set.properties.id.startsWith(vaultUrl));
  const read = await client.getSecret("from-node");
  assert.equal(read.value, "hello");
  assert.deepEqual(read.properties.tags, { lang: "js" });
});

test("DefaultAzureCredential, from AZURE_* alone", async () => {
  const client = new SecretClient(vaultUrl, new DefaultAzureCredential());
  await client.setSecret("default-credential", "works");
  assert.equal((await client.getSecret("default-credential")).value, "works");
});

test("a missing secret is a 404 that says not found", async () => {
  const credential = strongroomCredential();
  const client = new SecretClient(vaultUrl, credential);
  await assert.rejects(client.getSecret("nothing-here"), (error) => {
    assert.equal(error.statusCode, 404);
    assert.match(error.message, /not found/);
    return true;
  });
});
