-- cqueues.condition: conditions coroutines wait on (implemented with the scheduler in cqueues.lua).
return require("cqueues").condition
