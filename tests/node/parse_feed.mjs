// Parse an RSS file with the Podcast Index's own parser (podcast-partytime) and print what it read as JSON.
// Usage: node parse_feed.mjs FEED.xml   (tests/test_feed_readers.py runs it; install with `npm ci --prefix tests/node`)
import { readFileSync } from "node:fs";
import partytime from "podcast-partytime";

const xml = readFileSync(process.argv[2], "utf8");
const feed = partytime.parseFeed(xml, { allowMissingGuid: true });
if (!feed) {
  process.stderr.write("podcast-partytime could not parse the feed\n");
  process.exit(2);
}
// Dates and Sets do not survive JSON.stringify as-is.
const replacer = (_key, value) => (value instanceof Set ? [...value] : value);
process.stdout.write(JSON.stringify(feed, replacer));
