-- A scoring line, stamped once per schema and model:
--   CREATE PIPELINE p FROM TEMPLATE demo_scoring
--     WITH (s = demo, model = demo_large_orders, every = '10 seconds')
-- New orders landing in ${s}.incoming_orders are scored by ${model} into
-- ${s}.order_scores as they land; after each scoring run that committed
-- rows, the orders predicted large are copied to ${s}.large_order_alerts;
-- prices are checked for drift every morning.
CREATE TEMPLATE demo_scoring (
  s IDENT DEFAULT 'demo',
  model IDENT DEFAULT 'demo_large_orders',
  every INTERVAL DEFAULT '10 seconds'
) AS $$
CREATE TABLE ${s}.incoming_orders (order_id BIGINT, customer_id BIGINT, product TEXT,
  quantity INT, unit_price DECIMAL(10,2), ordered_at TIMESTAMP);
CREATE TABLE ${s}.large_order_alerts (order_id BIGINT, probability DOUBLE);
CREATE JOB ${s}_score_incoming EVERY '${every}' AS
  INSERT INTO ${s}.order_scores
  SELECT o.order_id, o.quantity >= 3,
         predict('${model}', c.region, c.segment, o.product, CAST(o.unit_price AS DOUBLE)),
         predict_proba('${model}', c.region, c.segment, o.product, CAST(o.unit_price AS DOUBLE))
  FROM table_changes('${s}.incoming_orders') o JOIN ${s}.customers c USING (customer_id)
  WHERE o._change_type = 'insert';
CREATE JOB ${s}_alert_large AFTER ${s}_score_incoming AS
  INSERT INTO ${s}.large_order_alerts
  SELECT order_id, probability FROM table_changes('${s}.order_scores')
  WHERE predicted AND _change_type = 'insert';
CREATE JOB ${s}_price_drift SCHEDULE '0 6 * * *' AS
  CHECK DRIFT ON ${s}.orders COLUMNS (unit_price, quantity) REFERENCE (VERSION AS OF 0);
$$
