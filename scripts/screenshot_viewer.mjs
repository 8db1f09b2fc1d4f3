// Screenshot the web viewer in headless Chromium after dragging the map across tile borders, then
// check that travel moves the view east and that its permalink reopens it.
//   npm install playwright-core   (no browser download; it drives Debian's /usr/bin/chromium)
//   node scripts/screenshot_viewer.mjs http://127.0.0.1:8000/ docs/viewer.png [#seed=1&z=8&x=1734&y=-150]
// (the optional permalink is where to open instead of seed 7's opening view)
// Exits non-zero if a tile request failed or the page logged an error.
import { chromium } from "playwright-core";

const [url = "http://127.0.0.1:8000/", out = "docs/viewer.png", open = "#seed=7"] =
  process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
const failures = [];
const tiles = new Set();
page.on("pageerror", (e) => failures.push(`page error: ${e.message}`));
page.on("response", (r) => {
  if (new URL(r.url()).pathname.match(/^\/tiles\/.*\.(png|webp|jpg)$/)) {
    tiles.add(r.url());
    if (r.status() >= 400) failures.push(`${r.status()} ${r.url()}`);
  }
  if (!r.url().startsWith(new URL(url).origin)) failures.push(`off-site request ${r.url()}`);
});
// Every tile image in the DOM has loaded (Leaflet marks them), not merely "no traffic for 0.5 s".
const tilesLoaded = () =>
  page.waitForFunction(
    () => {
      const imgs = [...document.querySelectorAll("img.leaflet-tile")];
      return imgs.length > 0 && imgs.every((i) => i.classList.contains("leaflet-tile-loaded"));
    },
    null,
    { timeout: 600_000, polling: 250 },
  );
await page.goto(url + open); // by default the opening view a newcomer gets, for seed 7
await tilesLoaded();
// Drag the map 700 px left and 150 px up: several tile columns and a row cross the view.
const box = await page.locator("#map").boundingBox();
const cx = box.x + box.width / 2;
const cy = box.y + box.height / 2;
await page.mouse.move(cx, cy);
await page.mouse.down();
for (let i = 1; i <= 20; i++) await page.mouse.move(cx - 35 * i, cy - 7.5 * i);
await page.mouse.up();
await page.waitForTimeout(300);
await tilesLoaded();
await page.waitForTimeout(500);
await page.screenshot({ path: out });
console.log(`screenshot ${out}; ${tiles.size} tiles loaded; hash ${new URL(page.url()).hash}`);

// Travel for 3 s (the button), stop it (the T key): the view moved east at the same zoom and
// height, and the permalink followed; reloading it opens the same view.
const view = () =>
  Object.fromEntries(
    new URL(page.url()).hash.slice(1).split("&").map((part) => part.split("=")),
  );
const start = view();
await page.click("#travel");
await page.waitForTimeout(3000);
await page.keyboard.press("t");
const end = view();
const pressed = await page.getAttribute("#travel", "aria-pressed");
const moved = Number(end.x) - Number(start.x);
console.log(`travelled ${moved} canvas px east in 3 s; hash ${new URL(page.url()).hash}`);
if (pressed !== "false" || end.y !== start.y || end.z !== start.z || !(moved > 100)) {
  failures.push(`travel from ${JSON.stringify(start)} to ${JSON.stringify(end)}; ${pressed}`);
}
await page.reload();
await page.waitForFunction(() => document.getElementById("status").textContent.includes("centre"));
if (JSON.stringify(view()) !== JSON.stringify(end)) {
  failures.push(`the permalink reopened at ${JSON.stringify(view())}, not ${JSON.stringify(end)}`);
}
await browser.close();
if (failures.length) {
  console.error(failures.join("\n"));
  process.exit(1);
}
