-- Counting one card brand's payments in an amount range (the payments page's brand and
-- amount filters together) reads exactly the matching index entries, instead of every
-- payment of that brand.
CREATE INDEX journeys_service_brand_amount ON journeys (service_id, card_brand, amount);
