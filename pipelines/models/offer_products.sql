-- What the model knows about a card offer: the product's attributes as
-- numbers, one row per offer_id of the card catalogue
-- (`bronze.card_products`, the latest delivery of each offer_id: the
-- catalogue is reference data without a business date). Training and
-- scoring join the same view, so a product is described to the model the
-- same way in both.
CREATE VIEW model.card_products AS
SELECT offer_id, name, tier, category, annual_fee, min_income_band
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY offer_id ORDER BY _run DESC, _line DESC) AS newest
  FROM bronze.card_products
)
WHERE newest = 1;

CREATE VIEW model.offer_products AS
SELECT offer_id,
       CASE tier WHEN 'classic' THEN 1 WHEN 'gold' THEN 2 WHEN 'platinum' THEN 3
                 WHEN 'signature' THEN 4 END AS offer_tier,
       CAST(annual_fee AS DOUBLE) AS offer_annual_fee,
       CAST(min_income_band AS BIGINT) AS offer_min_income_band,
       CAST(category = 'travel' AS INT) AS offer_is_travel,
       CAST(category = 'cashback' AS INT) AS offer_is_cashback,
       CAST(category = 'dining' AS INT) AS offer_is_dining,
       CAST(category = 'student' AS INT) AS offer_is_student,
       CAST(category = 'premium' AS INT) AS offer_is_premium
FROM model.card_products;
