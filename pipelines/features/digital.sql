-- Devices and digital activity, from logged-in device events (those that
-- carry a customer_id). A device several persons log in on is shared: a
-- signal here, never a reason to merge them.
WITH events AS (
    SELECT d.*, COALESCE(u.persons, 1) AS persons
    FROM build.devices d
    LEFT JOIN build.device_users u ON u.device_id = d.device_id
),
activity AS (
    SELECT unified_id,
           COUNT(*) FILTER (WHERE event_type = 'login_failed' AND days_ago < 30) AS failed_logins_30d,
           COUNT(*) FILTER (WHERE event_type = 'login' AND days_ago < 30) AS logins_30d,
           COUNT(*) FILTER (WHERE event_type = 'app_open' AND days_ago < 30) AS app_opens_30d,
           COUNT(*) FILTER (WHERE event_type = 'payment_auth' AND days_ago < 30) AS payment_auths_30d,
           COUNT(*) FILTER (WHERE event_type = 'password_reset' AND days_ago < 90) AS password_resets_90d,
           COUNT(*) FILTER (WHERE event_type = 'device_bind' AND days_ago < 90) AS device_binds_90d,
           MIN(days_ago) FILTER (WHERE event_type = 'login') AS days_since_last_login,
           CAST(COUNT(*) FILTER (WHERE os = 'web' AND days_ago < 90) AS DOUBLE)
             / NULLIF(COUNT(*) FILTER (WHERE days_ago < 90), 0) AS web_share_90d,
           COUNT(*) FILTER (WHERE geo_country <> 'CN' AND days_ago < 90) AS foreign_geo_events_90d
    FROM events
    GROUP BY unified_id
),
-- Distinct counts as two-level aggregates (one row per person and device,
-- or person and day) rather than a hash set per person.
person_devices AS (
    SELECT unified_id,
           device_id,
           MAX(persons) AS persons,
           MAX(CASE WHEN days_ago < 90 THEN 1 ELSE 0 END) AS recent,
           MAX(CASE WHEN rooted AND days_ago < 90 THEN 1 ELSE 0 END) AS rooted_recent
    FROM events
    GROUP BY unified_id, device_id
),
devices AS (
    SELECT unified_id,
           SUM(recent) AS distinct_devices_90d,
           COUNT(*) FILTER (WHERE persons > 1) AS shared_devices,
           SUM(rooted_recent) AS rooted_devices_90d
    FROM person_devices
    GROUP BY unified_id
),
active_days AS (
    SELECT unified_id, COUNT(*) AS digital_active_days_30d
    FROM (SELECT unified_id, bdate FROM events WHERE days_ago < 30 GROUP BY unified_id, bdate) d
    GROUP BY unified_id
)
SELECT a.*,
       d.distinct_devices_90d,
       d.shared_devices,
       d.rooted_devices_90d,
       COALESCE(x.digital_active_days_30d, 0) AS digital_active_days_30d
FROM activity a
JOIN devices d ON d.unified_id = a.unified_id
LEFT JOIN active_days x ON x.unified_id = a.unified_id
