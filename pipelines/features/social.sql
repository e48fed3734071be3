-- Social reach and interests from consented profiles linked to the person:
-- the latest observation (as of D) of each profile, summed over profiles.
WITH latest AS (
    SELECT unified_id,
           profile_key,
           first_value(followers ORDER BY observed_at DESC) AS followers,
           first_value(following ORDER BY observed_at DESC) AS following,
           first_value(posts_30d ORDER BY observed_at DESC) AS posts_30d,
           first_value(engagement_rate ORDER BY observed_at DESC) AS engagement_rate,
           first_value(sentiment ORDER BY observed_at DESC) AS sentiment,
           first_value(interests ORDER BY observed_at DESC) AS interests,
           MIN(days_ago) AS days_ago
    FROM build.social
    GROUP BY unified_id, profile_key
),
interests AS (
    SELECT unified_id, array_sort(array_agg(DISTINCT interest)) AS interests
    FROM (SELECT unified_id, unnest(interests) AS interest FROM latest) i
    WHERE interest IS NOT NULL
    GROUP BY unified_id
)
SELECT l.unified_id,
       COUNT(*) AS social_profiles,
       SUM(followers) AS social_followers,
       SUM(following) AS social_following,
       SUM(posts_30d) AS social_posts_30d,
       MAX(engagement_rate) AS social_engagement_rate,
       AVG(sentiment) AS social_sentiment,
       MIN(l.days_ago) AS days_since_social_observation,
       MAX(cardinality(i.interests)) AS social_interest_count,
       MAX(i.interests) AS social_interests
FROM latest l
LEFT JOIN interests i ON i.unified_id = l.unified_id
GROUP BY l.unified_id
