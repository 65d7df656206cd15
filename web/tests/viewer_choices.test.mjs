import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  choiceOf, choicesFileText, emptyChoices, normalizeChoices, parseChoicesFile, setChoice, storageKey, toggleChoice,
} from "../viewer/choices.mjs";

describe("viewer choices", () => {
  test("star, reject and clear move a cell between the lists, which stay sorted", () => {
    let c = emptyChoices();
    c = toggleChoice(c, 5, "starred");
    c = toggleChoice(c, 2, "starred");
    assert.deepEqual(c, { starred: [2, 5], rejected: [] });
    c = toggleChoice(c, 5, "rejected");
    assert.deepEqual(c, { starred: [2], rejected: [5] });
    assert.equal(choiceOf(c, 5), "rejected");
    c = toggleChoice(c, 5, "rejected"); // the same key again clears it
    assert.equal(choiceOf(c, 5), null);
    assert.deepEqual(setChoice(c, 2, null), emptyChoices());
  });

  test("normalize drops bad entries, duplicates and out-of-range cells; a star wins over a rejection", () => {
    const got = normalizeChoices({ starred: [3, 3, "1", -1, 1.5, 9, 0], rejected: [0, 2] }, 4);
    assert.deepEqual(got, { starred: [0, 3], rejected: [2] });
    assert.deepEqual(normalizeChoices(null), emptyChoices());
    assert.deepEqual(normalizeChoices({ starred: "x" }), emptyChoices());
  });

  test("storage keys differ per batch", () => {
    assert.notEqual(storageKey("a_1"), storageKey("b_2"));
    assert.equal(storageKey(null), "wi.viewer.choices.unnamed");
  });

  test("an exported file imports back to the same choices", () => {
    const c = { starred: [1, 4], rejected: [2] };
    assert.deepEqual(parseChoicesFile(choicesFileText("b_1", c), "b_1", 5), c);
  });

  test("importing another batch's file, or a non-choices file, is refused with the reason", () => {
    const text = choicesFileText("other_1", { starred: [1], rejected: [] });
    assert.throws(() => parseChoicesFile(text, "b_1", 5), /belong to batch other_1, not b_1/);
    assert.throws(() => parseChoicesFile("{nope", "b_1", 5), /not a choices file/);
    assert.throws(() => parseChoicesFile('{"starred": []}', "b_1", 5), /'starred' and 'rejected'/);
  });
});
