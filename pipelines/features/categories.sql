-- Spend share by merchant category over the 90-day window: the CNY spend
-- of the purchases in each category (ref.mcc_categories) over all
-- purchase spend, and the category with the most spend (ties: the first
-- by name; none when no spend converts to CNY).
WITH spend AS (
    SELECT unified_id, category, SUM(amount_cny) AS cny
    FROM build.txn
    WHERE status = 'approved' AND amount > 0 AND days_ago < 90
    GROUP BY unified_id, category
),
-- One pass over a person's categories: the totals beside each category,
-- and the categories ranked by spend (rather than a second aggregate of
-- the spend joined back onto it).
ranked AS (
    SELECT unified_id,
           category,
           cny,
           ROW_NUMBER() OVER (PARTITION BY unified_id ORDER BY cny DESC NULLS LAST, category) AS place,
           SUM(cny) OVER person AS total,
           SUM(CASE WHEN category = 'grocery' THEN cny END) OVER person AS grocery,
           SUM(CASE WHEN category = 'dining' THEN cny END) OVER person AS dining,
           SUM(CASE WHEN category = 'travel' THEN cny END) OVER person AS travel,
           SUM(CASE WHEN category = 'retail' THEN cny END) OVER person AS retail,
           SUM(CASE WHEN category = 'digital' THEN cny END) OVER person AS digital,
           SUM(CASE WHEN category = 'transport' THEN cny END) OVER person AS transport,
           SUM(CASE WHEN category = 'entertainment' THEN cny END) OVER person AS entertainment
    FROM spend
    WINDOW person AS (PARTITION BY unified_id)
)
SELECT unified_id,
       CAST(COALESCE(grocery, 0) AS DOUBLE) / CAST(NULLIF(total, 0) AS DOUBLE) AS grocery_share_90d,
       CAST(COALESCE(dining, 0) AS DOUBLE) / CAST(NULLIF(total, 0) AS DOUBLE) AS dining_share_90d,
       CAST(COALESCE(travel, 0) AS DOUBLE) / CAST(NULLIF(total, 0) AS DOUBLE) AS travel_share_90d,
       CAST(COALESCE(retail, 0) AS DOUBLE) / CAST(NULLIF(total, 0) AS DOUBLE) AS retail_share_90d,
       CAST(COALESCE(digital, 0) AS DOUBLE) / CAST(NULLIF(total, 0) AS DOUBLE) AS digital_share_90d,
       CAST(COALESCE(transport, 0) AS DOUBLE) / CAST(NULLIF(total, 0) AS DOUBLE) AS transport_share_90d,
       CAST(COALESCE(entertainment, 0) AS DOUBLE) / CAST(NULLIF(total, 0) AS DOUBLE) AS entertainment_share_90d,
       CASE WHEN cny IS NOT NULL THEN category END AS top_category_90d
FROM ranked
WHERE place = 1
