-- silver.customer_360: one row per person as of ${as_of}.
--
-- Golden attributes by survivorship: per attribute, the latest non-null
-- value by updated_at across every record of every customer_id the person
-- has (two records written at the same instant: the later delivery wins).
-- PII leaves this query masked (plus hashes for matching), never raw.
WITH records AS (
    -- version orders a person's records: the latest updated_at last, and
    -- among records written at the same instant the later delivery last.
    SELECT l.unified_id,
           c.*,
           ROW_NUMBER() OVER (PARTITION BY l.unified_id
                              ORDER BY c.updated_at, c._file, c._line) AS version
    FROM build.customers c
    JOIN build.customer_links l ON l.customer_id = c.customer_id
),
latest_records AS (
    -- A record lists every product its customer_id held when it was written.
    SELECT unified_id,
           products,
           ROW_NUMBER() OVER (PARTITION BY customer_id
                              ORDER BY updated_at DESC, _file DESC, _line DESC) AS recency
    FROM records
),
holdings AS (
    SELECT unified_id, array_sort(array_agg(product)) AS products
    FROM (
        SELECT unified_id, product
        FROM (SELECT unified_id, unnest(products) AS product
              FROM latest_records
              WHERE recency = 1) held
        WHERE product IS NOT NULL
        GROUP BY unified_id, product
    ) distinct_products
    GROUP BY unified_id
),
golden AS (
    SELECT unified_id,
           first_value(full_name ORDER BY version DESC) FILTER (WHERE full_name IS NOT NULL) AS full_name,
           first_value(id_number ORDER BY version DESC) FILTER (WHERE id_number IS NOT NULL) AS id_number,
           first_value(phone ORDER BY version DESC) FILTER (WHERE phone IS NOT NULL) AS phone,
           first_value(email ORDER BY version DESC) FILTER (WHERE email IS NOT NULL) AS email,
           first_value(phone_sha256 ORDER BY version DESC) FILTER (WHERE phone_sha256 IS NOT NULL) AS phone_sha256,
           first_value(email_sha256 ORDER BY version DESC) FILTER (WHERE email_sha256 IS NOT NULL) AS email_sha256,
           first_value(birth_date ORDER BY version DESC) FILTER (WHERE birth_date IS NOT NULL) AS birth_date,
           first_value(gender ORDER BY version DESC) FILTER (WHERE gender IS NOT NULL) AS gender,
           first_value(city ORDER BY version DESC) FILTER (WHERE city IS NOT NULL) AS city,
           first_value(segment ORDER BY version DESC) FILTER (WHERE segment IS NOT NULL) AS segment,
           first_value(income_band ORDER BY version DESC) FILTER (WHERE income_band IS NOT NULL) AS income_band,
           first_value(kyc_level ORDER BY version DESC) FILTER (WHERE kyc_level IS NOT NULL) AS kyc_level,
           first_value(marketing_opt_in ORDER BY version DESC) FILTER (WHERE marketing_opt_in IS NOT NULL) AS marketing_opt_in,
           first_value(customer_id ORDER BY onboard_date, customer_id) AS primary_customer_id,
           MIN(onboard_date) AS onboard_date,
           MAX(updated_at) AS updated_at
    FROM records
    GROUP BY unified_id
),
members AS (
    SELECT unified_id, array_sort(array_agg(customer_id)) AS customer_ids
    FROM build.customer_links
    GROUP BY unified_id
),
links AS (
    -- identity_map has one row per (source, source_key, unified_id).
    SELECT unified_id,
           array_sort(array_agg(source_key) FILTER (WHERE source = 'device_events')) AS device_ids,
           COUNT(*) FILTER (WHERE matched_by = 'shared_device') AS shared_device_count,
           array_sort(array_agg(source_key) FILTER (WHERE source = 'social_profiles')) AS social_profiles,
           array_sort(array_agg(source_key) FILTER (WHERE source = 'transactions')) AS card_ids
    FROM build.identity_map
    GROUP BY unified_id
)
SELECT ${as_of} AS as_of,
       g.unified_id,
       g.primary_customer_id,
       m.customer_ids,
       mask_name(g.full_name) AS full_name_masked,
       mask_id_number(g.id_number) AS id_number_masked,
       mask_phone(g.phone) AS phone_masked,
       mask_email(g.email) AS email_masked,
       g.phone_sha256,
       g.email_sha256,
       encode(sha256(upper(trim(g.id_number))), 'hex') AS id_number_sha256,
       g.gender,
       g.city,
       g.segment,
       g.income_band,
       g.kyc_level,
       g.marketing_opt_in,
       g.onboard_date,
       ${as_of} - g.onboard_date AS tenure_days,
       CAST(EXTRACT(YEAR FROM ${as_of}) - EXTRACT(YEAR FROM g.birth_date)
            - CASE WHEN EXTRACT(MONTH FROM ${as_of}) * 100 + EXTRACT(DAY FROM ${as_of})
                      < EXTRACT(MONTH FROM g.birth_date) * 100 + EXTRACT(DAY FROM g.birth_date)
                   THEN 1 ELSE 0 END AS BIGINT) AS age_years,
       COALESCE(h.products, make_array()) AS products,
       CAST(COALESCE(array_length(h.products), 0) AS BIGINT) AS product_count,
       l.device_ids,
       CAST(COALESCE(array_length(l.device_ids), 0) AS BIGINT) AS device_count,
       CAST(COALESCE(l.shared_device_count, 0) AS BIGINT) AS shared_device_count,
       l.social_profiles,
       l.card_ids,
       g.updated_at
FROM golden g
JOIN members m ON m.unified_id = g.unified_id
LEFT JOIN holdings h ON h.unified_id = g.unified_id
LEFT JOIN links l ON l.unified_id = g.unified_id
