// Azurite's blob service, with its accounts read from a file rather than fixed at start.
//
// Azurite takes its accounts and keys from the AZURITE_ACCOUNTS environment variable
// ("account:key1:key2;...") and re-reads that variable every minute, but nothing outside the
// process can change its environment. This launcher copies the file named by
// STRONGROOM_AZURITE_ACCOUNTS_FILE (same format) into the variable four times a second and
// shortens Azurite's refresh to half a second, so a key that Strongroom's Azurite provider
// regenerates (by rewriting the file) is what Azurite accepts about a second later, and the
// old key is refused from then on. Arguments are Azurite's own (azurite-blob --help).
"use strict";
const fs = require("fs");

const file = process.env.STRONGROOM_AZURITE_ACCOUNTS_FILE;
if (!file) {
  console.error("Set STRONGROOM_AZURITE_ACCOUNTS_FILE to the accounts file (account:key1:key2;...).");
  process.exit(2);
}

function load() {
  try {
    const text = fs.readFileSync(file, "utf8").trim();
    if (text) process.env.AZURITE_ACCOUNTS = text;
  } catch (err) {
    console.error(`cannot read ${file}: ${err.message}`);
  }
}

load();
require("azurite/dist/src/common/utils/constants").DEFAULT_ACCOUNTS_REFRESH_INTERVAL = 500;
setInterval(load, 250).unref();
require("azurite/dist/src/blob/main");
