// "Sweep the winners": the starred cells' values as a follow-up sweep. Each value's text in the value syntax is
// computed by the pack's Python (core/values.py value_text) and stored in the viewer data (axes[i].value_texts),
// so this module only picks and joins. Pure; no DOM.

/**
 * The follow-up sweep of the starred cells.
 *
 * Matrix batches list each parameter's distinct starred values in axis order (the new matrix holds every starred
 * combination, and may add others); linear batches list the starred cells' values in cell order, so the new
 * linear sweep runs exactly those cells.
 *
 * Returns {params: [{name, type, text, values, node_id}], problems: [text], mode, count}.
 */
export function winnersSweep(data, starred) {
  const axes = data.axes || [];
  const byIndex = new Map((data.cells || []).map((c) => [c.index, c]));
  const cells = [...starred].sort((a, b) => a - b).map((i) => byIndex.get(i)).filter(Boolean);
  const linear = data.mode === "linear";
  const problems = [];
  const params = axes.map((axis, ai) => {
    let positions = cells.map((c) => c.coords[ai]).filter((p) => Number.isInteger(p) && p >= 0 && p < axis.values.length);
    if (!linear) positions = [...new Set(positions)].sort((x, y) => x - y);
    const texts = [];
    for (const p of positions) {
      const text = (axis.value_texts || [])[p];
      if (typeof text === "string") texts.push(text);
      else problems.push(`${axis.name}: ${((axis.value_text_errors || [])[p]) || "value cannot be written"}`);
    }
    const slot = (data.parameter_slots || [])[ai] || null;
    return { name: axis.name, type: axis.type, text: texts.join(", "), values: positions.map((p) => axis.values[p]),
      node_id: slot ? slot.node_id : null };
  });
  return { params, problems, mode: linear ? "linear" : "matrix", count: cells.length };
}

/** The values text of every parameter, one "name: text" line each, to paste. */
export function winnersText(sweep) {
  return sweep.params.map((p) => `${p.name}: ${p.text}`).join("\n");
}

/**
 * The batch's workflow with each parameter node's values widget holding the winners' text (a deep copy; the
 * widget positions come from the viewer data's parameter_slots, computed by core/prompt_graph.py). Null when the
 * batch recorded no workflow.
 */
export function winnersWorkflow(data, sweep) {
  if (!data.workflow || !Array.isArray(data.workflow.nodes)) return null;
  const workflow = JSON.parse(JSON.stringify(data.workflow));
  const slots = data.parameter_slots || [];
  sweep.params.forEach((p, ai) => {
    const slot = slots[ai];
    if (!slot) return;
    const node = workflow.nodes.find((n) => n && String(n.id) === String(slot.node_id));
    if (node && Array.isArray(node.widgets_values) && slot.widget < node.widgets_values.length) {
      node.widgets_values[slot.widget] = p.text;
    }
  });
  return workflow;
}
